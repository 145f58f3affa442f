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
COUPLED, DECOUPLED = "coupled", "decoupled"


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
    # --weight-decay with sgd, momentum, nesterov and adam, as the framework's own option
    # applies it: "coupled" (torch, MXNet, optax's add_decayed_weights: wd * w joins the
    # gradient, after clipping) or "decoupled" (Keras 3: w -= lr * wd * w beside the update).
    # adamw is decoupled everywhere.
    weight_decay: str = COUPLED
    # Momentum's buffer: torch and optax accumulate gradients and scale by today's lr
    # (b = mu*b + g; w -= lr*b); Keras and MXNet accumulate lr-scaled steps (m = mu*m + lr*g;
    # w -= m). The same with a constant lr; not under a schedule.
    momentum_lr_inside: bool = False
    # MXNet 1.9.1's nag_mom_update, run in place (its NAG optimizer passes out=weight), writes
    # the weight before the buffer, whose coupled wd * w then reads the new weight:
    # m = mu*m + lr*(g + wd*w_new). Only with momentum_lr_inside and --weight-decay.
    nesterov_decay_reads_new_weight: bool = False
    # AdamW's step size: lr_t * sqrt(1-b2^t)/(1-b1^t) rounded once as a float32 hyperparameter
    # (as Adam's), or, MXNet's contrib.adamw_update, the product of two C floats: the rate
    # (its eta) times the bias correction (its lr). Only with float32_hyperparameters.
    adamw_rate_times_correction: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self, config: dict) -> list[str]:
        """The differences from the canonical (torch-like) rules that touch a run of this
        config (``TrainConfig.to_dict()``)."""
        notes: list[str] = []
        optimizer = config["optimizer"]
        if config["solver"] != "gd":
            return notes
        if self.adam_eps == ADAM_EPS_HAT and optimizer in ("adam", "adamw"):
            notes.append("Adam adds eps to sqrt(v), not sqrt(v_hat) (the 'epsilon hat' form)")
        if config.get("clip_norm") is not None and (self.clip_eps, self.clip_summed) != (
            CLIP_EPS,
            False,
        ):
            where = "the batch-summed gradient's norm" if self.clip_summed else "the norm"
            notes.append(f"clipping adds {self.clip_eps:g} to {where}, not {CLIP_EPS:g}")
        decayed = config.get("weight_decay", 0.0) > 0 and optimizer != "adamw"
        if decayed and self.weight_decay != COUPLED:
            notes.append(
                f"--weight-decay is {self.weight_decay} (w -= lr*wd*w), not added to the gradient"
            )
        if decayed and self.nesterov_decay_reads_new_weight and optimizer == "nesterov":
            notes.append("Nesterov's buffer takes wd times the updated weight, not the old one")
        scheduled = config.get("lr_schedule", "constant") != "constant" or config.get(
            "warmup_epochs", 0
        )
        if scheduled and self.momentum_lr_inside and optimizer in ("momentum", "nesterov"):
            notes.append("momentum accumulates lr-scaled steps (m = mu*m + lr*g), not gradients")
        if self.float32_hyperparameters:
            notes.append("optimizer hyperparameters are rounded to float32 (C float)")
        return notes


CANONICAL = Conventions()
