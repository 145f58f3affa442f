"""The MXNet port: gluon.nn.Dense + gluon.loss.L2Loss + gluon.Trainer (sgd, nag, adam), CPU/GPU."""
