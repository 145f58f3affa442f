"""The comparison as JSON, Markdown and terminal tables."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import dlport
from dlport.common.atomic import write_text_atomic
from dlport.compare.quality import FAR, GREW, WORST_R2, quality
from dlport.compare.run import REFERENCE, Case, Comparison, Row

REPORT_SCHEMA_VERSION = 1
COLUMNS = [
    "framework",
    "version",
    "device",
    "dtype",
    "status",
    "mse",
    "rmse",
    "mae",
    "r2",
    "val mse",
    "vs optimum",
    "quality",
    "fit s",
    "steps/s",
    "Δ weights",
    "Δ loss",
    "tolerance",
    "parity",
]
# The terminal gets the columns that decide, in 100 columns; report.md has them all. Two
# verdicts, named apart: "quality" (did it train: ok, far from the optimum, diverged) and
# "parity" (does it agree with the reference, within the dtype's tolerance).
TERMINAL_COLUMNS = [
    "framework",
    "device",
    "mse",
    "vs optimum",
    "quality",
    "Δ weights",
    "Δ loss",
    "parity",
]


def _g(value: float | None, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def _vs_optimum(mse: float, optimum_mse: float) -> str:
    """MSE relative to the optimum's: a percentage, or a factor once it is 10x or more."""
    ratio = mse / optimum_mse if optimum_mse > 0 else float("inf") if mse > 0 else 1.0
    return f"{ratio - 1:+.3%}" if ratio < 10 else f"{ratio:.3g}x"


def _row_cells(name: str, result, row: Row | None, optimum_mse: float) -> dict[str, str]:
    if result is None:  # did not run
        return dict.fromkeys(COLUMNS, "") | {
            "framework": name,
            "status": row.outcome.status,
            "parity": "not run",
        }
    m, t = result.metrics, result.timing
    parity = row.parity if row else None
    return {
        "framework": name,
        "version": result.framework_version,
        "device": result.device,
        "dtype": result.dtype,
        "status": "ok",
        "mse": _g(m["mse"], ".6g"),
        "rmse": _g(m["rmse"], ".6g"),
        "mae": _g(m["mae"], ".6g"),
        "r2": _g(m["r2"], ".6f"),
        "val mse": _g(m.get("val_mse"), ".6g"),  # --validation: the held-out rows'
        "vs optimum": _vs_optimum(m["mse"], optimum_mse),
        "quality": quality(result, optimum_mse),
        "fit s": _g(t["fit_seconds"]),
        "steps/s": _g(t.get("steps_per_second"), ",.0f"),
        "Δ weights": _g(parity.params_diff if parity else None),
        "Δ loss": _g(parity.loss_diff if parity else None),
        "tolerance": _g(parity.tolerance if parity else None),
        "parity": "reference" if row is None else ("pass" if parity.passed else "FAIL"),
    }


def case_rows(case: Case, optimum_mse: float, columns: list[str]) -> list[list[str]]:
    rows = [_row_cells(f"{REFERENCE} (ref)", case.reference, None, optimum_mse)]
    for name, row in case.rows.items():
        rows.append(_row_cells(name, row.outcome.result, row, optimum_mse))
    return [[r[c] for c in columns] for r in rows]


def convention_lines(case: Case) -> list[str]:
    lines = []
    for name, row in case.rows.items():
        for note, size in row.parity.convention_notes if row.parity else []:
            lines.append(
                f"{name}: {note}; that alone moves the weights by {size:.3g} (max relative) "
                "from the canonical rules; the reference follows it"
            )
        if row.parity and row.parity.engine_note:
            p = row.parity
            lines.append(
                f"{name}: {p.engine_note}; {p.params_diff:.3g} on the weights and "
                f"{p.loss_diff or 0:.3g} on the loss (max relative), held to {p.tolerance:g}"
            )
    for name, row in case.rows.items():
        if not row.outcome.ok:
            lines.append(
                f"{name} did not run ({row.outcome.status}): {row.outcome.reason}; "
                f"fix: {row.outcome.fix}"
            )
    return lines


def diverged(comparison: Comparison) -> list[str]:
    """`case/framework` of every run whose quality is 'diverged', the reference's included."""
    optimum_mse = comparison.optimum["metrics"]["mse"]
    return [
        f"{case.name}/{name}"
        for case in comparison.cases
        for name, result in case.results().items()
        if quality(result, optimum_mse) == "diverged"
    ]


def to_dict(comparison: Comparison) -> dict[str, Any]:
    optimum_mse = comparison.optimum["metrics"]["mse"]
    cases = []
    for case in comparison.cases:
        rows = {}
        for name, row in case.rows.items():
            o = row.outcome
            rows[name] = {
                "status": o.status,
                "reason": o.reason,
                "fix": o.fix,
                "seconds": o.seconds,
                "result": o.result.to_dict() if o.result else None,
                "quality": quality(o.result, optimum_mse) if o.result else None,
                "parity": None
                if row.parity is None
                else {
                    "weights": row.parity.params_diff,
                    "loss": row.parity.loss_diff,
                    "tolerance": row.parity.tolerance,
                    "passed": row.parity.passed,
                    "conventions": [
                        {"difference": n, "size": s} for n, s in row.parity.convention_notes
                    ],
                },
            }
        cases.append(
            {
                "name": case.name,
                "config": case.config.to_dict(),
                "reference": case.reference.to_dict(),
                "reference_quality": quality(case.reference, optimum_mse),
                "frameworks": rows,
                "pairwise": case.pairwise,
            }
        )
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "dlport_version": dlport.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": {
            "source": comparison.data.source,
            "n_samples": comparison.data.n_samples,
            "n_features": comparison.data.n_features,
            "feature_names": list(comparison.data.feature_names),
            "target": comparison.data.target_name,
        },
        "config": comparison.base.to_dict(),
        "frameworks": comparison.frameworks,
        "optimum": comparison.optimum,
        "all_ran": comparison.all_ran,
        "all_agree": comparison.all_agree,
        "diverged": diverged(comparison),
        "cases": cases,
    }


def _md_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _pair(pairwise, a: str, b: str) -> str:
    if a == b:
        return "-"
    diff = pairwise[a][b]
    return f"{diff['params']:.2g} / {_g(diff['loss'], '.2g')}"


def to_markdown(comparison: Comparison) -> str:
    optimum_mse = comparison.optimum["metrics"]["mse"]
    d = comparison.data
    lines = [
        "# dlport compare",
        "",
        f"Data: `{d.source}` ({d.n_samples} x {d.n_features}, target `{d.target_name}`). "
        "Each case below gives its config.",
        "",
        f"Least-squares optimum (numpy lstsq, float64): MSE {optimum_mse:.6g}. "
        "'vs optimum' is each run's MSE relative to it.",
        "",
        "Two verdicts. **quality**: did the run train (`ok`; `far`: MSE more than "
        f"{FAR:.0%} above the optimum; `diverged`: the loss grew {GREW:g}x or more from the "
        f"first epoch to the last, or r2 < {WORST_R2:g}). **parity**: does it agree with the "
        "reference within the dtype's tolerance (a reference that diverged is agreed with too).",
        "",
        "Δ is the max relative difference |a - b| / max(1, |b|) to the NumPy reference that "
        "follows the framework's conventions (float64; float32 runs are held to it too).",
        "",
        f"All frameworks ran: **{comparison.all_ran}**. All within tolerance: "
        f"**{comparison.all_agree}**. Diverged: **{', '.join(diverged(comparison)) or 'none'}**.",
    ]
    for case in comparison.cases:
        config = json.dumps(case.config.to_dict())
        lines += ["", f"## {case.name}", "", f"Config: `{config}`", ""]
        lines += _md_table(COLUMNS, case_rows(case, optimum_mse, COLUMNS))
        notes = convention_lines(case)
        if notes:
            lines += [""] + [f"- {n}" for n in notes]
        results = case.results()
        lines += ["", "Weights (original units) and bias:", ""]
        names = list(results)
        weights = [
            [f, *(f"{results[n].weights[i]:.10g}" for n in names)]
            for i, f in enumerate(d.feature_names)
        ]
        weights.append(["(bias)", *(f"{results[n].bias:.10g}" for n in names)])
        lines += _md_table(["feature", *names], weights)
        lines += ["", "Pairwise max relative difference (weights / loss curve):", ""]
        grid = [[a, *(_pair(case.pairwise, a, b) for b in names)] for a in names]
        lines += _md_table(["", *names], grid)
    lines += [
        "",
        "Plots: `loss_curves.png` (loss per epoch, log scale), "
        "`loss_difference.png` (per-epoch difference to the reference).",
        "",
    ]
    return "\n".join(lines)


def write(comparison: Comparison, out) -> None:
    write_text_atomic(
        out / "report.json", json.dumps(to_dict(comparison), indent=2, allow_nan=False) + "\n"
    )
    write_text_atomic(out / "report.md", to_markdown(comparison))


def print_terminal(comparison: Comparison, file=None) -> None:
    from dlport.console import print_table

    file = file or sys.stdout
    optimum_mse = comparison.optimum["metrics"]["mse"]
    for case in comparison.cases:
        print_table(
            f"{case.name} ({comparison.data.source}, {comparison.base.dtype})",
            TERMINAL_COLUMNS,
            case_rows(case, optimum_mse, TERMINAL_COLUMNS),
            file=file,
        )
        for line in convention_lines(case):
            print(f"  {line}", file=file)
