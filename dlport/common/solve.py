"""The exact solver's contract, one for every framework and device (docs/design.md, "Exact
solver").

Each framework's least-squares routine handles rank its own way: NumPy's and torch's ``gelsd``
truncate singular values below ``eps * max(n, p)`` of the largest, TensorFlow's complete
orthogonal decomposition has its own threshold, torch's CUDA ``gels`` and MXNet's LQ solve
have none. On the same badly scaled design they return different models. So the design is
decided here, once, before any framework sees it:

1. its columns are scaled to unit 2-norm (the model is unchanged: the solution is divided by
   the same scales), which removes the ill-conditioning that mere units cause; an all-zero
   column (a constant feature, standardized) is left out and gets coefficient 0;
2. one cutoff, ``eps(dtype) * max(n, p)`` on the ratio of the smallest to the largest singular
   value of the scaled design, decides rank; a design under it is refused in one line, naming
   the columns that are (nearly) dependent. Every framework then solves a full-rank problem,
   where all their routines agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlport.common.errors import DlportError

INTERCEPT = "(intercept)"


def rank_cutoff(dtype, n: int, p: int) -> float:
    return float(np.finfo(dtype).eps) * max(n, p)


@dataclass(frozen=True)
class ScaledDesign:
    """The columns a framework solves for (unit 2-norm, in the run's dtype), and the way back."""

    matrix: np.ndarray
    scales: np.ndarray
    kept: np.ndarray  # mask over the design's columns: all-zero ones are not solved for

    def coefficients(self, solution) -> np.ndarray:
        """The design's coefficients; an all-zero column gets 0, the minimum-norm choice that
        every least-squares routine makes (a constant feature, once standardized, is one)."""
        coef = np.zeros(len(self.kept))
        coef[self.kept] = np.asarray(solution, dtype=np.float64).reshape(-1) / self.scales
        return coef


def scaled_design(design: np.ndarray, names: list[str], dtype) -> ScaledDesign:
    """``design`` (n x p, intercept last) checked against the one rank cutoff, scaled."""
    design = np.asarray(design, dtype=np.float64)
    norms = np.linalg.norm(design, axis=0)
    kept = norms > 0
    design, scales = design[:, kept], norms[kept]
    names = [name for name, keep in zip([*names, INTERCEPT], kept, strict=True) if keep]
    n, p = design.shape
    if n < p:
        raise DlportError(
            f"--solver exact needs at least as many samples as coefficients ({n} < {p}); "
            "give more rows, or train with --solver gd"
        )
    scaled = design / scales
    # The singular values of R (p x p) are those of the design, at a fraction of an SVD's cost.
    r = np.linalg.qr(scaled, mode="r")
    _, sv, vt = np.linalg.svd(r)
    ratio, cutoff = sv[-1] / sv[0], rank_cutoff(dtype, n, p)
    if not ratio > cutoff:
        # The right singular vector of the smallest singular value is the dependency itself.
        null = np.abs(vt[-1])
        dependent = [names[j] for j in np.flatnonzero(null > 0.1 * null.max())]
        wider = "" if np.dtype(dtype) == np.float64 else "use --dtype float64, "
        raise DlportError(
            f"--solver exact: the design is numerically rank-deficient in {np.dtype(dtype).name} "
            f"(singular value ratio {ratio:.2g} <= cutoff {cutoff:.2g} after column scaling): "
            f"{dependent} are (nearly) linearly dependent; drop one of them, {wider}"
            "or train with --solver gd"
        )
    return ScaledDesign(scaled.astype(dtype), scales, kept)
