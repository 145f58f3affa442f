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
    check_rank(np.linalg.qr(scaled, mode="r"), names, n, dtype)
    return ScaledDesign(scaled.astype(dtype), scales, kept)


def check_rank(r: np.ndarray, names: list[str], n: int, dtype) -> None:
    """Refuse a design whose R factor (column-scaled) is under the one rank cutoff."""
    _, sv, vt = np.linalg.svd(r)
    ratio, cutoff = sv[-1] / sv[0], rank_cutoff(dtype, n, r.shape[1])
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


# The normal equations square the condition number: their answer keeps about
# 16 - 2 * log10(cond) digits in float64. Up to this condition of the column-scaled design
# they lose no more than 1e-10 relative; beyond it the QR route (lstsq's accuracy) is taken.
GRAM_MAX_CONDITION = 1e3


@dataclass
class Gram:
    """[X 1]^T [X 1] and [X 1]^T y, accumulated in float64 block by block (intercept last)."""

    matrix: np.ndarray | None = None
    rhs: np.ndarray | None = None
    rows: int = 0

    def add(self, block, rows: int) -> None:
        """One block's [X 1 y]^T [X 1 y] in float64 (any array NumPy takes), as a framework
        computed it: one matrix product of the block with its ones and target columns beside
        it, where four (X^T X, the column sums, X^T y, the sum of y) would read it four times."""
        block = np.asarray(block, dtype=np.float64)
        matrix, rhs = block[:-1, :-1], block[:-1, -1]
        if self.matrix is None:
            self.matrix, self.rhs = matrix.copy(), rhs.copy()
        else:
            self.matrix += matrix
            self.rhs += rhs
        self.rows += rows

    def drop_intercept(self) -> None:
        """A fit through the origin: the intercept's row and column go (coefficient 0)."""
        self.matrix[-1, :] = self.matrix[:, -1] = 0.0
        self.rhs[-1] = 0.0

    def all_reduce(self, sum_over_workers) -> None:
        """Sum the workers' parts (a data-parallel run: each added its own rows) with the
        engine's ``sum_over_workers(float64 vector) -> vector``."""
        p = len(self.rhs)
        total = sum_over_workers(np.concatenate([self.matrix.ravel(), self.rhs, [self.rows]]))
        total = np.asarray(total, dtype=np.float64)
        self.matrix, self.rhs = total[: p * p].reshape(p, p), total[p * p : -1]
        self.rows = int(round(total[-1]))

    def solve(self, names: list[str], dtype, solve) -> np.ndarray | None:
        """The coefficients from the column-scaled normal equations, solved by ``solve(A, b)``
        (the framework's); None when the design is too ill-conditioned for them (or under the
        rank cutoff): the caller then takes the QR route, which also refuses rank deficiency."""
        diag = np.diag(self.matrix).copy()
        kept = diag > 0
        p = int(kept.sum())
        if self.rows < p:
            raise DlportError(
                f"--solver exact needs at least as many samples as coefficients "
                f"({self.rows} < {p}); give more rows, or train with --solver gd"
            )
        scales = np.sqrt(diag[kept])
        scaled = self.matrix[np.ix_(kept, kept)] / np.outer(scales, scales)
        eigenvalues = np.linalg.eigvalsh(scaled)
        if not eigenvalues[0] > 0:
            return None
        ratio = float(np.sqrt(eigenvalues[0] / eigenvalues[-1]))  # sv ratio of the design
        if ratio < 1 / GRAM_MAX_CONDITION or not ratio > rank_cutoff(dtype, self.rows, p):
            return None
        coef = np.zeros(len(kept))
        solution = np.asarray(solve(scaled, self.rhs[kept] / scales), dtype=np.float64)
        coef[kept] = solution.reshape(-1) / scales
        return coef


def streamed_qr_solve(blocks, gram: Gram, names: list[str], dtype) -> np.ndarray:
    """The QR route for data streamed in blocks (a TSQR): R of the column-scaled [X 1 y] is
    updated a block at a time, then the rank is checked and R c = Q^T y solved, as
    ``scaled_design`` and lstsq do for data in memory."""
    diag = np.diag(gram.matrix)
    kept = diag > 0
    scales = np.sqrt(diag[kept])
    kept_names = [n for n, k in zip([*names, INTERCEPT], kept, strict=True) if k]
    r = None
    for X, y in blocks:
        design = np.column_stack([X, np.ones(len(y)), y]).astype(np.float64)
        part = np.column_stack([design[:, :-1][:, kept] / scales, design[:, -1]])
        r = np.linalg.qr(part if r is None else np.vstack([r, part]), mode="r")
    p = len(scales)
    check_rank(r[:p, :p], kept_names, gram.rows, dtype)
    coef = np.zeros(len(kept))
    coef[kept] = np.linalg.solve(r[:p, :p], r[:p, p]) / scales
    return coef
