"""How well a run trained, apart from whether it agrees with the reference: a run that diverged
to a huge but finite MSE agrees perfectly with a reference that diverged the same way."""

from __future__ import annotations

from dlport.common.results import TrainResult

# The training loss grew this much from the first epoch to the last: diverging, not converging.
GREW = 2.0
# Worse than predicting the target's mean twice over (r2 below -1): no model at all.
WORST_R2 = -1.0
# Further than this above the least-squares optimum's MSE (relative): trained, but not there.
FAR = 0.01


def quality(result: TrainResult, optimum_mse: float) -> str:
    """'diverged', 'far' (from the least-squares optimum) or 'ok'."""
    loss = result.history["loss"]
    if result.metrics["r2"] < WORST_R2 or (loss and loss[-1] > GREW * loss[0]):
        return "diverged"
    return "far" if result.metrics["mse"] > (1.0 + FAR) * optimum_mse else "ok"
