"""Benchmark output: JSON, a Markdown table, a terminal table and PNG charts."""

from __future__ import annotations

import io
import json
import platform
import time
from pathlib import Path

from dlport.common.atomic import write_bytes_atomic, write_text_atomic

COLUMNS = [
    "workload",
    "framework",
    "device",
    "samples/s (min-max)",
    "steps/s",
    "x numpy loop",
    "x idiomatic",
    "x cpu",
    "warm-up s",
    "time to quality s",
    "exact s",
    "peak RSS MB",
    "targets",
]


def _sps(s: dict | None) -> str:
    return "-" if s is None else f"{s['median']:,.0f} ({s['min']:,.0f}-{s['max']:,.0f})"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _times(ratio: float | None, what: str) -> str:
    return "" if ratio is None else f", {ratio:.1f}x {what}"


def table_rows(rows: list[dict]) -> list[list[str]]:
    out = []
    for r in rows:
        if r["status"] != "ok":
            out.append(
                [
                    r["workload"],
                    r["framework"],
                    r["device"],
                    r["status"],
                    *[""] * 8,
                    r["reason"][:60],
                ]
            )
            continue
        ttq = r["ttq_seconds"]
        epochs = [e for e in r["ttq_epochs"] if e]
        vs_loop = _times(r.get("ttq_vs_loop"), "loop")
        verdicts = ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in r["targets"].items())
        out.append(
            [
                r["workload"],
                r["framework"],
                r["device"] + " (tf32)" * r.get("tf32", False),
                _sps(r["samples_per_second"]),
                f"{r['steps_per_second']['median']:,.0f}",
                _x(r.get("vs_numpy_loop")),
                _x(r.get("vs_idiomatic")),
                _x(r.get("vs_cpu")),
                f"{r['warmup_seconds']['median']:.3f}",
                "not reached"
                if ttq is None
                else f"{ttq['median']:.3f} ({max(epochs)} ep{vs_loop})",
                f"{r['exact_seconds']['median']:.3f}{_times(r.get('exact_vs_xtx'), 'XtX')}",
                f"{r['peak_rss_mb']:,.0f}",
                verdicts or "-",
            ]
        )
    return out


def baseline_rows(rows: list[dict]) -> list[list[str]]:
    out = []
    for r in rows:
        if r["framework"] == "numpy" and r["status"] == "ok":
            out.append(
                [
                    r["workload"],
                    "numpy loop (hand-written)",
                    _sps(r["numpy_loop_samples_per_second"]),
                    f"{r['lstsq_seconds']['median']:.3f}",
                    f"{r['xtx_seconds']['median']:.3f}",
                ]
            )
        if "idiomatic_samples_per_second" in r:
            out.append(
                [
                    r["workload"],
                    f"{r['framework']} idiomatic ({r['device']})",
                    _sps(r["idiomatic_samples_per_second"]),
                    "-",
                    "-",
                ]
            )
    return out


BASELINE_COLUMNS = ["workload", "baseline", "samples/s (min-max)", "numpy lstsq s", "X^T X s"]


def machine() -> str:
    import os

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}, "
        f"Python {platform.python_version()}"
    )


def to_markdown(rows: list[dict], meta: dict) -> str:
    def md(columns, body):
        return [
            "| " + " | ".join(columns) + " |",
            "|" + "---|" * len(columns),
            *("| " + " | ".join(r) + " |" for r in body),
        ]

    lines = [
        f"Measured {meta['created']} on {meta['machine']}; {meta['dtype']}, median of "
        f"{meta['repeats']} repeats (min-max); ratios against baselines measured in the same run.",
        "",
        *md(COLUMNS, table_rows(rows)),
        "",
        *md(BASELINE_COLUMNS, baseline_rows(rows)),
        "",
    ]
    return "\n".join(lines)


def write(rows: list[dict], meta: dict, out_dir: Path) -> Path:
    stamp = meta["stamp"]
    write_text_atomic(
        out_dir / f"{stamp}.json", json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n"
    )
    write_text_atomic(out_dir / f"{stamp}.md", to_markdown(rows, meta))
    return out_dir / f"{stamp}.md"


def meta(dtype: str, repeats: int) -> dict:
    return {
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "stamp": time.strftime("%Y%m%d-%H%M%S"),
        "machine": machine(),
        "dtype": dtype,
        "repeats": repeats,
    }


def print_terminal(rows: list[dict]) -> None:
    from dlport.console import print_table

    print_table("dlport bench", COLUMNS, table_rows(rows))
    print_table("baselines (same run)", BASELINE_COLUMNS, baseline_rows(rows))


def write_charts(rows: list[dict], out_dir: Path, stamp: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] == "ok"]
    workloads = list(dict.fromkeys(r["workload"] for r in ok))
    if not workloads:
        return []
    written = []
    fig, axes = plt.subplots(1, len(workloads), figsize=(4.5 * len(workloads), 4.5), squeeze=False)
    for ax, workload in zip(axes[0], workloads, strict=True):
        these = [r for r in ok if r["workload"] == workload]
        labels, values, colors = [], [], []
        for r in these:
            labels.append(f"{r['framework']}\n{r['device']}")
            values.append(r["samples_per_second"]["median"])
            colors.append("tab:orange" if r["device"] == "gpu" else "tab:blue")
            if "idiomatic_samples_per_second" in r:
                labels.append(f"{r['framework']}\nidiomatic")
                values.append(r["idiomatic_samples_per_second"]["median"])
                colors.append("tab:gray")
        ax.bar(range(len(values)), values, color=colors)
        ax.set_xticks(range(len(values)), labels, fontsize=7)
        loop = next(
            (
                r["numpy_loop_samples_per_second"]["median"]
                for r in these
                if "numpy_loop_samples_per_second" in r
            ),
            None,
        )
        if loop:
            ax.axhline(loop, color="black", linestyle="--", linewidth=1, label="numpy loop")
            ax.legend(fontsize=7)
        # Log scale only where the bars span orders of magnitude: there it needs a floor, and a
        # floor makes bars within 2x of each other look far apart.
        if max(values) > 20 * min(values):
            ax.set_yscale("log")
        ax.set(title=f"{workload}: samples/s (median)", ylabel="samples/s")
    fig.suptitle("dlport trainers (blue: CPU, orange: GPU), idiomatic baselines (gray)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    written.append(out_dir / f"{stamp}-throughput.png")
    write_bytes_atomic(written[-1], buffer.getvalue())
    return written
