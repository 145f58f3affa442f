"""The NumPy reference: hand-written gradients and update rules, the ground truth of parity.

Each rule is written as docs/design.md states it; ``Conventions`` switches on a framework's own
variant (Adam's epsilon placement, MXNet's float32 hyperparameters) so that every framework
has an exact reference.
"""

from __future__ import annotations

import numpy as np

from dlport.common.batching import iter_batches
from dlport.common.config import TrainConfig
from dlport.common.conventions import ADAM_EPS_HAT, CANONICAL, Conventions
from dlport.common.fitting import TrainerBase
from dlport.common.solve import rank_cutoff


class NumpyTrainer(TrainerBase):
    name = "numpy"

    def __init__(self, conventions: Conventions = CANONICAL):
        self.conventions = conventions

    def version(self) -> str:
        return np.__version__

    def devices(self) -> list[str]:
        return ["cpu"]

    def _runner(self, X, y, w0, b0, config, device):
        return ReferenceRunner(X, y, w0, b0, config, self.conventions)

    def _solve_exact(self, X, y, device):
        return np.linalg.lstsq(X, y, rcond=rank_cutoff(X.dtype, *X.shape))[0]

    def _gram(self, X, y, device):
        X, y = X.astype(np.float64, copy=False), y.astype(np.float64, copy=False)
        return X.T @ X, X.sum(axis=0), X.T @ y, y.sum()

    def _solve_gram(self, A, b, device):
        return np.linalg.solve(A, b)

    def _predict(self, X, w, b, device):
        return X @ w + X.dtype.type(b)


class ReferenceRunner:
    """Minibatch gradient descent on mean squared error; parameters are one vector [w, b]."""

    def __init__(self, X, y, w0, b0, config: TrainConfig, conventions: Conventions):
        self.X, self.y, self.config, self.conventions = X, y, config, conventions
        self.dtype = X.dtype.type
        self.theta = np.append(w0, b0).astype(X.dtype)
        self.batch_size = config.batch_size_for(len(y))
        self.buf = np.zeros_like(self.theta)  # momentum buffer, or Adam's first moment
        self.second = np.zeros_like(self.theta)  # Adam's second moment
        self.t = 0
        h = self._hyper
        self.lr, self.mu, self.beta1, self.beta2, self.eps = (
            h(config.lr),
            h(config.momentum),
            h(config.beta1),
            h(config.beta2),
            h(config.eps),
        )

    def _hyper(self, value: float):
        """A scalar as the framework holds it: float32 for MXNet (C float), else exact."""
        if self.conventions.float32_hyperparameters:
            value = float(np.float32(value))
        return self.dtype(value)

    def set_data(self, X, y) -> None:
        self.X, self.y = X, y

    def run_epoch(self, order: np.ndarray) -> float:
        total = 0.0
        for idx in iter_batches(order, self.batch_size):
            total += self.step(self.X[idx], self.y[idx]) * len(idx)
        return total / len(order)

    def params(self):
        return self.theta[:-1].astype(np.float64), float(self.theta[-1])

    def optimizer_state(self) -> dict:
        return {"first": self.buf.copy(), "second": self.second.copy(), "step": self.t}

    def load_optimizer_state(self, state: dict) -> None:
        self.buf = state["first"].astype(self.theta.dtype)
        self.second = state["second"].astype(self.theta.dtype)
        self.t = int(state["step"])

    def step(self, Xb: np.ndarray, yb: np.ndarray) -> float:
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported per epoch
            return self._step(Xb, yb)

    def _step(self, Xb: np.ndarray, yb: np.ndarray) -> float:
        residual = Xb @ self.theta[:-1] + self.theta[-1] - yb
        loss = float(np.mean(residual * residual))
        # d/dtheta of mean(residual^2): summed over the batch, then scaled by 1/m, as frameworks
        # (MXNet's Trainer.step(batch_size) keeps the scale 1/m as a C float) do.
        summed = np.append(Xb.T @ (2 * residual), np.sum(2 * residual))
        clip, m = self.config.clip_norm, len(yb)
        if clip is not None and self.conventions.clip_summed:  # MXNet: before Trainer's 1/m
            summed = summed * self._clip_scale(summed, clip * m)
        grad = summed * self._hyper(1.0 / m)
        if clip is not None and not self.conventions.clip_summed:
            grad = grad * self._clip_scale(grad, clip)
        self._update(grad)
        return loss

    def _clip_scale(self, g: np.ndarray, limit: float):
        """min(1, limit / (||g|| + eps)): global-norm clipping, in the run's dtype."""
        norm = np.sqrt(np.sum(g * g))
        return min(
            self.dtype(1), self.dtype(limit) / (norm + self.dtype(self.conventions.clip_eps))
        )

    def _update(self, g: np.ndarray) -> None:
        opt, lr, mu = self.config.optimizer, self.lr, self.mu
        if opt == "sgd":
            self.theta -= lr * g
        elif opt == "momentum":  # torch: b = mu*b + g; p -= lr*b
            self.buf = mu * self.buf + g
            self.theta -= lr * self.buf
        elif opt == "nesterov":  # torch: b = mu*b + g; p -= lr*(g + mu*b)
            self.buf = mu * self.buf + g
            self.theta -= lr * (g + mu * self.buf)
        else:
            self._adam(g)

    def _adam(self, g: np.ndarray) -> None:
        self.t += 1
        b1, b2, eps = self.beta1, self.beta2, self.eps
        self.buf = b1 * self.buf + (1 - b1) * g
        self.second = b2 * self.second + (1 - b2) * g * g
        # Bias corrections from the hyperparameters as the user gave them (Python floats).
        c1 = 1 - self.config.beta1**self.t
        c2 = 1 - self.config.beta2**self.t
        if self.conventions.adam_eps == ADAM_EPS_HAT:
            # alpha = lr*sqrt(1-b2^t)/(1-b1^t); p -= alpha*m/(sqrt(v)+eps)
            alpha = self._hyper(self.config.lr * np.sqrt(c2) / c1)
            self.theta -= alpha * self.buf / (np.sqrt(self.second) + eps)
        else:
            # p -= lr * m_hat / (sqrt(v_hat) + eps)
            m_hat = self.buf / self.dtype(c1)
            v_hat = self.second / self.dtype(c2)
            self.theta -= self.lr * m_hat / (np.sqrt(v_hat) + eps)
