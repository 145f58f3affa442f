"""PNG plots of a comparison: loss curves overlaid, and their difference to the reference."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from dlport.common.atomic import write_bytes_atomic
from dlport.compare.parity import per_epoch_difference
from dlport.compare.run import REFERENCE, Comparison

# Differences below this are drawn at it: a log axis cannot show an exact zero.
FLOOR = 1e-17


def _figure(n_panels: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(n_panels, 2)
    rows = -(-n_panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return plt, fig, axes.flat


def _save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


def write_plots(comparison: Comparison, out: Path) -> list[Path]:
    cases = [c for c in comparison.cases if c.config.solver == "gd"]
    if not cases:
        return []
    written = []
    plt, fig, axes = _figure(len(cases))
    for ax, case in zip(axes, cases, strict=False):  # axes may have spare panels
        for name, result in case.results().items():
            epochs = np.arange(1, len(result.history["loss"]) + 1)
            style = (
                {"color": "black", "linestyle": "--", "linewidth": 2.5, "zorder": 1}
                if name == REFERENCE
                else {"linewidth": 1.2, "marker": ".", "zorder": 2}
            )
            ax.plot(epochs, result.history["loss"], label=name, **style)
        ax.set_yscale("log")
        ax.set(
            title=f"{case.name}: training loss", xlabel="epoch", ylabel="MSE (standardized units)"
        )
        ax.legend()
    written.append(out / "loss_curves.png")
    _save(plt, fig, written[-1])

    plt, fig, axes = _figure(len(cases))
    for ax, case in zip(axes, cases, strict=False):  # axes may have spare panels
        for name, row in case.rows.items():
            if not row.outcome.ok:
                continue
            result = row.outcome.result
            diff = np.maximum(per_epoch_difference(result, row.reference), FLOOR)
            ax.plot(np.arange(1, len(diff) + 1), diff, marker=".", label=name)
        tolerance = next((r.parity.tolerance for r in case.rows.values() if r.parity), None)
        if tolerance:
            ax.axhline(tolerance, color="red", linestyle=":", linewidth=1, label="tolerance")
        ax.set_yscale("log")
        ax.set(
            title=f"{case.name}: |loss - own-convention reference| / max(1, |ref|)",
            xlabel="epoch",
            ylabel=f"relative difference (floor {FLOOR:g})",
        )
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    written.append(out / "loss_difference.png")
    _save(plt, fig, written[-1])
    return written
