"""The GPU set in one call: parity on the GPU, then the benchmark, GPU against this machine's CPU.

    bash bench/gpu.sh            # results under $OUT (a lent device machine) or bench/results

Made for a GPU machine with no network and no tox: this machine's ``python3`` runs dlport from
the source tree. Every framework of the registry is probed in a process of its own (Keras
binds one backend per process); those that import and see a GPU run, the others get a row
saying why. Parity: float64 within 1e-9 and float32 within 1e-4 of the NumPy reference on the
CPU, TF32 off.
The benchmark's GPU rows allow TF32 (speed runs, marked "(tf32)"); the summary holds its table.

Without a GPU it is a dry run: it probes the same imports, prints the commands it would run
and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dlport.common.registry import ported_names  # noqa: E402

PROBE = """
import json, sys
from dlport.common.errors import DlportError
from dlport.common.registry import get_trainer
try:
    trainer = get_trainer(sys.argv[1])
    print(json.dumps({"version": trainer.version(), "devices": trainer.devices()}))
except DlportError as exc:
    print(json.dumps({"reason": str(exc)}))
"""
# Parity cases: (label, data, extra train flags). Diabetes is the project's parity set; the
# synthetic one has many steps per epoch and a tail batch, as the benchmark's workloads do.
PARITY = [
    ("diabetes-float64", "diabetes", ["--dtype", "float64"]),
    ("diabetes-float32", "diabetes", ["--dtype", "float32"]),
    # Streamed (windows of 60 rows): torch's eager loop on the GPU, JAX's chunk compiles.
    ("diabetes-float64-streamed", "diabetes", ["--dtype", "float64", "--max-memory", "64KB"]),
    (
        "synthetic-float32",
        "synthetic:n=100000,d=16,noise=0.1,seed=0",
        ["--dtype", "float32", "--batch-size", "256", "--epochs", "3", "--optimizers", "sgd"],
    ),
]
# The workloads with CPU targets; on an H200 machine (16 cores) the four parity runs took some
# 200 s and all four workloads at 3 repeats did not fit the 300 s left of an 8-minute call.
WORKLOADS, REPEATS = "medium,large", 2


def child_env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def probe(name: str) -> dict:
    """{"version", "devices"} of ``name`` in this python, or {"reason"} it cannot run here."""
    try:
        run = subprocess.run(
            [sys.executable, "-c", PROBE, name],
            capture_output=True,
            text=True,
            timeout=300,
            env=child_env(),
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"reason": "importing it took over 300 s"}
    lines = run.stdout.strip().splitlines()
    if run.returncode or not lines:
        tail = (run.stderr.strip().splitlines() or ["no output"])[-1]
        return {"reason": f"probe failed: {tail}"}
    return json.loads(lines[-1])


def gpu_name() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    run = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
    )
    return run.stdout.strip().splitlines()[0] if run.returncode == 0 and run.stdout else None


def dlport_command(args: list[str], frameworks: list[str]) -> list[str]:
    pythons = [f"--python={name}={sys.executable}" for name in frameworks]
    return [sys.executable, "-m", "dlport", *args, f"--frameworks={','.join(frameworks)}"] + (
        pythons
    )


def plan(frameworks: list[str], out: Path, parity_dir: Path) -> list[tuple[str, list[str]]]:
    steps = []
    for label, data, flags in PARITY:
        args = ["compare", "--data", data, "--device", "gpu", *flags]
        args += ["--out", str(parity_dir / label)]
        steps.append((f"parity {label}", dlport_command(args, frameworks)))
    if "torch" in frameworks:
        graphs = [sys.executable, str(ROOT / "bench" / "torch_graphs.py")]
        steps.append(("torch eager vs CUDA graph", graphs))
    bench = ["bench", "--devices=cpu,gpu", f"--workloads={WORKLOADS}", f"--repeats={REPEATS}"]
    bench += ["--timeout=120", f"--out={out}"]
    steps.append(("bench", dlport_command(bench, frameworks)))
    return steps


def parity_summary(parity_dir: Path) -> list[str]:
    lines = ["| case | optimizer | framework | device | max rel. diff weights | loss | verdict |"]
    lines.append("|---|---|---|---|---|---|---|")
    for label, _, _ in PARITY:
        path = parity_dir / label / "report.json"
        if not path.exists():
            lines.append(f"| {label} | - | - | - | - | - | no report |")
            continue
        report = json.loads(path.read_text())
        for case in report["cases"]:
            for name, row in case["frameworks"].items():
                if row["status"] != "ok":
                    why = row["reason"]
                    lines.append(f"| {label} | {case['name']} | {name} | - | - | - | {why} |")
                    continue
                p, device = row["parity"], row["result"]["device"]
                verdict = ("pass" if p["passed"] else "OVER") + f" (tol {p['tolerance']:g})"
                loss = "-" if p["loss"] is None else f"{p['loss']:.2e}"
                lines.append(
                    f"| {label} | {case['name']} | {name} | {device} | {p['weights']:.2e} "
                    f"| {loss} | {verdict} |"
                )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "bench" / "results"))
    parser.add_argument("--dry-run", action="store_true", help="plan only, even with a GPU")
    args = parser.parse_args()
    out = Path(args.out).absolute()
    started, wall_start = time.monotonic(), time.time()
    gpu = gpu_name()
    print(f"GPU: {gpu or 'none (nvidia-smi finds none)'}; python {sys.version.split()[0]}")
    probes = {name: probe(name) for name in ported_names()}
    runnable = [n for n, p in probes.items() if "gpu" in p.get("devices", [])]
    for name, p in probes.items():
        if name in runnable:
            print(f"  {name} {p['version']}: runs on cpu and gpu")
        elif "reason" in p:
            print(f"  {name}: not here ({p['reason']})")
        else:
            print(f"  {name} {p['version']}: imports, sees no GPU (devices: {p['devices']})")
    parity_dir = out / time.strftime("%Y%m%d-%H%M%S-gpu-parity")
    steps = plan(runnable or ["torch"], out, parity_dir)
    if args.dry_run or not gpu or not runnable:
        why = "--dry-run" if args.dry_run else "no GPU here" if not gpu else "no framework sees it"
        print(f"dry run ({why}); on a GPU machine this runs:")
        for label, command in steps:
            print(f"  {label}: {shlex.join(command)}")
        return 0
    parity_dir.mkdir(parents=True, exist_ok=True)
    failed, graphs = [], []
    for label, command in steps:
        print(f"== {label} ({time.monotonic() - started:.0f} s in)", flush=True)
        run = subprocess.run(command, env=child_env(), cwd=ROOT, stdout=subprocess.PIPE, text=True)
        print(run.stdout, end="", flush=True)
        if label.startswith("torch eager"):
            graphs = run.stdout.strip().splitlines()
        if run.returncode:
            failed.append(f"{label} (exit {run.returncode})")
    summary = [f"# GPU run: {gpu}", "", f"python {sys.version.split()[0]}; frameworks here:", ""]
    for name, p in probes.items():
        state = "cpu, gpu" if name in runnable else p.get("reason") or f"devices {p['devices']}"
        summary.append(f"- {name}: {state}")
    summary += ["", "## Parity on the GPU (NumPy reference on the CPU)", ""]
    summary += parity_summary(parity_dir)
    summary += ["", "## torch: eager steps against the CUDA graph (float32, TF32)", ""]
    summary += [f"- {line}" for line in graphs]
    tables = [t for t in out.glob("*.md") if t.stat().st_mtime >= wall_start]
    summary += ["", "## Benchmark, GPU against this machine's CPU", ""]
    summary += [t.read_text() for t in tables] or ["(no table: see the bench step's output)"]
    for data in parity_dir.glob("*/data.npz"):  # the synthetic case's 14 MB: its spec remakes it
        data.unlink()
    took = time.monotonic() - started
    summary += ["", f"Took {took:.0f} s. Failed: {', '.join(failed) or 'none'}."]
    (parity_dir / "summary.md").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
