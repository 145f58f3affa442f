"""The NumPy reference: hand-written gradients and update rules, the ground truth of parity.

Each rule is written as docs/design.md states it; ``Conventions`` switches on a framework's own
variant (Adam's epsilon placement, MXNet's float32 hyperparameters) so that every framework
has an exact reference.
"""

from __future__ import annotations

import numpy as np

from dlport.common.batching import iter_batches
from dlport.common.config import TrainConfig
from dlport.common.conventions import ADAM_EPS_HAT, CANONICAL, DECOUPLED, Conventions
from dlport.common.fitting import TrainerBase
from dlport.common.losses import mean_loss, parse_loss
from dlport.common.schedules import Schedule
from dlport.common.solve import rank_cutoff


class NumpyTrainer(TrainerBase):
    name = "numpy"

    def __init__(self, conventions: Conventions = CANONICAL):
        self.conventions = conventions

    def version(self) -> str:
        return np.__version__

    def devices(self) -> list[str]:
        return ["cpu"]

    def _runner(self, X, y, w0, b0, config, device, schedule):
        return ReferenceRunner(X, y, w0, b0, config, self.conventions, schedule)

    def _solve_exact(self, X, y, device):
        return np.linalg.lstsq(X, y, rcond=rank_cutoff(X.dtype, *X.shape))[0]

    def _gram(self, X, y, device):
        A = np.empty((len(X), X.shape[1] + 2))
        A[:, :-2], A[:, -2], A[:, -1] = X, 1.0, y
        return A.T @ A

    def _solve_gram(self, A, b, device):
        return np.linalg.solve(A, b)

    def _predict(self, X, w, b, device):
        return X @ w + X.dtype.type(b)


class ReferenceRunner:
    """Minibatch gradient descent; parameters are one vector [w, b]."""

    def __init__(self, X, y, w0, b0, config: TrainConfig, conventions: Conventions, schedule=None):
        """``schedule``: by default, the one of a run on these rows."""
        self.X, self.y, self.config, self.conventions = X, y, config, conventions
        self.dtype = X.dtype.type
        self.theta = np.append(w0, b0).astype(X.dtype)
        self.batch_size = config.batch_size_for(len(y))
        self.schedule = schedule or Schedule.for_rows(config, len(y))
        self.loss = parse_loss(config.loss)
        self.buf = np.zeros_like(self.theta)  # momentum buffer, or Adam's first moment
        self.second = np.zeros_like(self.theta)  # Adam's second moment
        self.t = 0  # updates done: the schedule's step, and Adam's
        # The bias is never decayed (docs/design.md, "Weight decay").
        self.decay_mask = np.append(np.ones_like(w0), 0.0).astype(X.dtype)
        h = self._hyper
        self.mu, self.beta1, self.beta2, self.eps, self.wd = (
            h(config.momentum),
            h(config.beta1),
            h(config.beta2),
            h(config.eps),
            h(config.weight_decay),
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

    def learning_rate(self) -> float:
        return float(self._hyper(self.schedule.rate(self.t)))

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
        loss, dloss = self._loss(residual)
        # d/dtheta of the mean loss: summed over the batch, then scaled by 1/m, as frameworks
        # (MXNet's Trainer.step(batch_size) keeps the scale 1/m as a C float) do.
        summed = np.append(Xb.T @ dloss, np.sum(dloss) if self.config.fit_intercept else 0)
        clip, m = self.config.clip_norm, len(yb)
        if clip is not None and self.conventions.clip_summed:  # MXNet: before Trainer's 1/m
            summed = summed * self._clip_scale(summed, clip * m)
        grad = summed * self._hyper(1.0 / m)
        if clip is not None and not self.conventions.clip_summed:
            grad = grad * self._clip_scale(grad, clip)
        rate = self.schedule.rate(self.t)
        lr = self._hyper(rate)
        if self.wd:
            decoupled = self.config.optimizer == "adamw" or (
                self.conventions.weight_decay == DECOUPLED
            )
            if decoupled:  # w -= lr*wd*w, beside the update (Keras, torch's AdamW)
                self.theta -= lr * self.wd * self.decay_mask * self.theta
            else:  # L2 joins the (clipped) gradient, inside the optimizer (torch, MXNet)
                grad = grad + self.wd * self.decay_mask * self.theta
        self._update(grad, rate)
        return loss

    def _loss(self, r: np.ndarray):
        """(the batch's mean loss, each sample's d loss / d prediction)."""
        kind, delta = self.loss.kind, self.dtype(self.loss.delta)
        if kind == "mae":
            slope = np.sign(r)
        elif kind == "huber":
            slope = np.clip(r, -delta, delta)
        else:
            slope = 2 * r
        return mean_loss(self.loss, r), slope

    def _clip_scale(self, g: np.ndarray, limit: float):
        """min(1, limit / (||g|| + eps)): global-norm clipping, in the run's dtype."""
        norm = np.sqrt(np.sum(g * g))
        return min(
            self.dtype(1), self.dtype(limit) / (norm + self.dtype(self.conventions.clip_eps))
        )

    def _update(self, g: np.ndarray, rate: float) -> None:
        opt, mu, lr = self.config.optimizer, self.mu, self._hyper(rate)
        self.t += 1
        if opt == "sgd":
            self.theta -= lr * g
        elif self.conventions.momentum_lr_inside and opt != "adam" and opt != "adamw":
            # Keras, MXNet: m = mu*m + lr*g; p -= m (nesterov: p -= mu*m + lr*g)
            self.buf = mu * self.buf + lr * g
            step = mu * self.buf + lr * g if opt == "nesterov" else self.buf
            self.theta -= step
            if opt == "nesterov" and self.conventions.nesterov_decay_reads_new_weight:
                # MXNet's in-place nag_mom_update: the buffer's lr*wd*w reads w - step
                self.buf = self.buf - lr * self.wd * self.decay_mask * step
        elif opt == "momentum":  # torch: b = mu*b + g; p -= lr*b
            self.buf = mu * self.buf + g
            self.theta -= lr * self.buf
        elif opt == "nesterov":  # torch: b = mu*b + g; p -= lr*(g + mu*b)
            self.buf = mu * self.buf + g
            self.theta -= lr * (g + mu * self.buf)
        else:
            self._adam(g, rate)

    def _adam(self, g: np.ndarray, rate: float) -> None:
        lr = self._hyper(rate)
        b1, b2, eps = self.beta1, self.beta2, self.eps
        self.buf = b1 * self.buf + (1 - b1) * g
        self.second = b2 * self.second + (1 - b2) * g * g
        # Bias corrections from the hyperparameters as the user gave them (Python floats).
        c1 = 1 - self.config.beta1**self.t
        c2 = 1 - self.config.beta2**self.t
        if self.conventions.adam_eps == ADAM_EPS_HAT:
            # alpha = lr*sqrt(1-b2^t)/(1-b1^t); p -= alpha*m/(sqrt(v)+eps)
            alpha = self._hyper(rate * np.sqrt(c2) / c1)
            if self.conventions.adamw_rate_times_correction and self.config.optimizer == "adamw":
                alpha = lr * self._hyper(np.sqrt(c2) / c1)  # MXNet's eta * lr, two C floats
            self.theta -= alpha * self.buf / (np.sqrt(self.second) + eps)
        else:
            # p -= lr * m_hat / (sqrt(v_hat) + eps)
            m_hat = self.buf / self.dtype(c1)
            v_hat = self.second / self.dtype(c2)
            self.theta -= lr * m_hat / (np.sqrt(v_hat) + eps)
