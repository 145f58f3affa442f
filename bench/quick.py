"""Quick throughput probe of one framework on one workload, against the NumPy reference and the
framework's idiomatic baseline, all measured in this run.

    python -m bench.quick --framework torch [--n 100000 --d 16 --batch-size 256 --epochs 3]

Run it with the framework's env python (e.g. .tox/torch/bin/python). Steady state: the first
epoch (compilation, warm-up) is excluded, as TrainResult.timing does.
"""

from __future__ import annotations

import argparse
import importlib
import time

from dlport.common.config import TrainConfig
from dlport.common.data import load_dataset
from dlport.common.registry import get_trainer
from dlport.frameworks.numpy.trainer import NumpyTrainer


def idiomatic_steps_per_second(framework, X, y, batch_size, epochs):
    try:
        module = importlib.import_module(f"bench.baselines.{framework}")
    except ImportError:
        return None
    module.idiomatic_fit(X, y, batch_size, 1)  # warm-up
    start = time.perf_counter()
    module.idiomatic_fit(X, y, batch_size, epochs)
    steps = epochs * -(-len(y) // batch_size)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--framework", required=True)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data = load_dataset(f"synthetic:n={args.n},d={args.d},noise=0.1,seed=0")
    config = TrainConfig(
        epochs=args.epochs + 1, batch_size=args.batch_size, dtype=args.dtype, device=args.device
    )
    figures = {}
    for label, trainer in (
        ("numpy reference", NumpyTrainer()),
        (args.framework, get_trainer(args.framework)),
    ):
        figures[label] = trainer.fit(data, config).timing["steps_per_second"]
    X, y = data.X.astype(args.dtype), data.y.astype(args.dtype)
    idiomatic = idiomatic_steps_per_second(args.framework, X, y, args.batch_size, args.epochs)
    if idiomatic:
        figures[f"{args.framework} idiomatic"] = idiomatic
    base = figures["numpy reference"]
    print(f"n={args.n} d={args.d} batch={args.batch_size} {args.dtype} {args.device}")
    for label, sps in figures.items():
        print(f"{label:>24}: {sps:10,.0f} steps/s  {sps / base:6.3f}x numpy reference")


if __name__ == "__main__":
    main()
