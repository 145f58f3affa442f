"""Runs the workers (each framework in its own env, as compare does) and summarizes them."""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from dlport.bench.worker import check_figures
from dlport.bench.workloads import AT_SCALE, TARGET_VS_IDIOMATIC, TARGETS_VS_NUMPY, WORKLOADS
from dlport.common.envs import find_python, run_json
from dlport.common.progress import progress_bar


def spread(values: list[float]) -> dict[str, float]:
    """Median with min and max: the figure and how far repeats strayed from it."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


@dataclass
class Measurement:
    framework: str
    workload: str
    device: str
    status: str  # ok | no-device | missing | failed | invalid | timeout
    figures: dict | None = None
    reason: str = ""


def run_bench(
    frameworks,
    workloads,
    devices,
    dtype,
    repeats,
    overrides,
    timeout,
    out_dir,
    progress=True,
    tf32=True,
) -> list[Measurement]:
    """Every (workload, framework, device) in its own worker. GPU rows are speed runs: float32
    matmuls may use TF32 there unless ``tf32`` is off (each row records which)."""
    jobs = [
        (w, f, dev)
        for w in workloads
        for f in ["numpy", *frameworks]
        for dev in devices
        if not (f == "numpy" and dev == "gpu")
    ]
    measurements = []
    with progress_bar(len(jobs), "bench", progress) as bar:
        for workload, framework, device in jobs:
            bar.status(f"{framework} {workload} {device}")
            python = (
                Path(sys.executable) if framework == "numpy" else find_python(framework, overrides)
            )
            json_path = out_dir.absolute() / f".{framework}-{workload}-{device}.json"
            asked = {
                "framework": framework,
                "workload": workload,
                "device": device,
                "dtype": dtype,
                "repeats": repeats,
                "tf32": tf32 and device == "gpu" and dtype == "float32",
            }
            # --opt=VALUE: a path starting with '-' stays a value.
            args = [f"--{k}={v}" for k, v in asked.items() if not isinstance(v, bool)]
            args += ["--tf32"] * asked["tf32"] + [f"--json={json_path}"]
            outcome = run_json(
                framework, python, ["dlport.bench.worker", *args], json_path, timeout
            )
            json_path.unlink(missing_ok=True)
            problem = check_figures(outcome.payload, asked) if outcome.ok else ""
            if problem:
                outcome.invalid(f"unusable result: {problem}")
            if outcome.ok:
                p = outcome.payload
                m = Measurement(framework, workload, device, p["status"], p, p.get("reason", ""))
            else:
                reason = f"{outcome.reason} ({outcome.fix})"
                m = Measurement(framework, workload, device, outcome.status, reason=reason)
            measurements.append(m)
            bar.advance(f"{framework} {workload} {device}: {measurements[-1].status}")
    return measurements


def summarize(measurements: list[Measurement]) -> list[dict]:
    """One row per (framework, workload, device): medians, spreads and same-run ratios."""
    numpy = {
        m.workload: m.figures for m in measurements if m.framework == "numpy" and m.status == "ok"
    }
    numpy_loop = {
        w: spread(f["numpy_loop"]["samples_per_second"])["median"] for w, f in numpy.items()
    }
    numpy_xtx = {w: spread(f["xtx_seconds"])["median"] for w, f in numpy.items()}
    cpu = {
        (m.framework, m.workload): m for m in measurements if m.device == "cpu" and m.status == "ok"
    }
    rows = []
    for m in measurements:
        row = {
            "framework": m.framework,
            "workload": m.workload,
            "device": m.device,
            "status": m.status,
            "reason": m.reason,
        }
        if m.status == "ok":
            row["tf32"] = m.figures["tf32"]
        if m.status == "ok":
            f, t = m.figures, m.figures["trainer"]
            row |= {
                "version": f["framework_version"],
                "dtype": f["dtype"],
                "samples_per_second": spread(t["samples_per_second"]),
                "steps_per_second": spread(t["steps_per_second"]),
                "warmup_seconds": spread(t["warmup_seconds"]),
                "ttq_seconds": spread(t["ttq_seconds"]) if t["ttq_reached"] else None,
                "ttq_epochs": t["ttq_epochs"],
                "exact_seconds": spread(t["exact_seconds"]),
                "peak_rss_mb": f["peak_rss_mb"],
            }
            sps = row["samples_per_second"]["median"]
            if m.workload in numpy_loop:
                row["vs_numpy_loop"] = sps / numpy_loop[m.workload]
                if row["ttq_seconds"] is not None:  # against the loop's epochs to get there
                    loop = max(t["ttq_epochs"]) * WORKLOADS[m.workload].n / numpy_loop[m.workload]
                    row["ttq_vs_loop"] = row["ttq_seconds"]["median"] / loop
                row["exact_vs_xtx"] = row["exact_seconds"]["median"] / numpy_xtx[m.workload]
            if "idiomatic" in f:
                row["idiomatic_samples_per_second"] = spread(f["idiomatic"]["samples_per_second"])
                row["vs_idiomatic"] = sps / row["idiomatic_samples_per_second"]["median"]
            if "numpy_loop" in f:
                row["numpy_loop_samples_per_second"] = spread(f["numpy_loop"]["samples_per_second"])
                row["lstsq_seconds"] = spread(f["lstsq_seconds"])
                row["xtx_seconds"] = spread(f["xtx_seconds"])
            if m.device == "gpu" and (m.framework, m.workload) in cpu:
                cpu_sps = cpu[(m.framework, m.workload)].figures["trainer"]["samples_per_second"]
                row["vs_cpu"] = sps / statistics.median(cpu_sps)
            row["targets"] = targets(row)
        rows.append(row)
    return rows


def targets(row: dict) -> dict[str, bool]:
    """Issue 7's targets, judged only where they apply (CPU, float32, the named workloads)."""
    if row["device"] != "cpu" or row.get("dtype") != "float32" or row["framework"] == "numpy":
        return {}
    verdicts = {}
    if row["workload"] in TARGETS_VS_NUMPY and "vs_numpy_loop" in row:
        goal = TARGETS_VS_NUMPY[row["workload"]]
        verdicts[f">= {goal}x numpy loop"] = row["vs_numpy_loop"] >= goal
    if row["workload"] in TARGET_VS_IDIOMATIC and "vs_idiomatic" in row:
        goal = TARGET_VS_IDIOMATIC[row["workload"]]
        verdicts[f">= {goal:g}x idiomatic"] = row["vs_idiomatic"] >= goal
    if row["workload"] in AT_SCALE:  # issue 12's: time to quality and the exact solve
        ttq, exact = AT_SCALE[row["workload"]]
        verdicts[f"ttq <= {ttq:g}x loop"] = row.get("ttq_vs_loop", float("inf")) <= ttq
        verdicts[f"exact <= {exact:g}x XtX"] = row.get("exact_vs_xtx", float("inf")) <= exact
    return verdicts


def check_workloads(names: list[str]) -> list[str]:
    from dlport.common.errors import DlportError

    unknown = [n for n in names if n not in WORKLOADS]
    if unknown or not names:
        raise DlportError(f"unknown workload(s) {unknown}; choose from: {', '.join(WORKLOADS)}")
    return names
