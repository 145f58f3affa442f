"""Where a framework's built-in rules differ by design from the canonical ones (docs/design.md,
"Conventions").

The NumPy reference implements each of these so that every framework has an exact reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# torch.optim.Adam: p -= lr * m_hat / (sqrt(v_hat) + eps)
ADAM_EPS_OUTSIDE_VHAT = "eps-outside-sqrt-vhat"
# Keras 3 and MXNet: alpha = lr*sqrt(1-b2^t)/(1-b1^t); p -= alpha * m / (sqrt(v) + eps)
ADAM_EPS_HAT = "eps-hat"
CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_


@dataclass(frozen=True)
class Conventions:
    adam_eps: str = ADAM_EPS_OUTSIDE_VHAT
    # MXNet keeps optimizer hyperparameters (lr, momentum, betas, eps) as C floats.
    float32_hyperparameters: bool = False
    # Global-norm clipping scales the gradient by min(1, C / (norm + clip_eps)): torch's
    # clip_grad_norm_ adds 1e-6; Keras' global_clipnorm and optax's clip_by_global_norm add
    # nothing; MXNet's clip_global_norm adds 1e-8 to the norm of the batch-summed gradient,
    # before Trainer's 1/m (clip_summed), against C * m.
    clip_eps: float = CLIP_EPS
    clip_summed: bool = False
    # MXNet's parameter server: its sums of float64 values come back rounded to float32 (its
    # real_t) in some runs and exact in others, the same command giving both (measured). A
    # float64 data-parallel run is held to float32 sums.
    parallel_sum_float32: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(
        self, optimizer: str = "adam", solver: str = "gd", clipped: bool = False
    ) -> list[str]:
        """The differences from the canonical (torch-like) rules that touch this kind of run."""
        notes = []
        if solver != "gd":
            return notes
        if self.adam_eps == ADAM_EPS_HAT and optimizer == "adam":
            notes.append("Adam adds eps to sqrt(v), not sqrt(v_hat) (the 'epsilon hat' form)")
        if clipped and (self.clip_eps, self.clip_summed) != (CLIP_EPS, False):
            where = "the batch-summed gradient's norm" if self.clip_summed else "the norm"
            notes.append(f"clipping adds {self.clip_eps:g} to {where}, not {CLIP_EPS:g}")
        if self.float32_hyperparameters:
            notes.append("optimizer hyperparameters are rounded to float32 (C float)")
        return notes


CANONICAL = Conventions()
