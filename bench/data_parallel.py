"""The collective's cost per step, per framework: ``dlport train --workers N`` against one
process on the medium workload, each framework in its own env.

    python bench/data_parallel.py [--workers 2] [--repeats 3]

On a machine with fewer cores than workers this measures the engine's overhead (the all-reduce,
the processes contending for cores), not a speedup: each worker still does its share of every
step. Writes bench/results/<timestamp>-data-parallel.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dlport.common.envs import child_command, find_python, subprocess_env  # noqa: E402
from dlport.common.registry import data_parallel_names  # noqa: E402

WORKLOAD = ["--data", "synthetic:n=100000,d=16,seed=0", "--batch-size", "256", "--epochs", "3"]
WORKLOAD += ["--dtype", "float32", "--device", "cpu"]


def steps_per_second(python: Path, framework: str, workers: int) -> float:
    """Steady-state steps/s of one run (rank 0's epochs 2-3)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        args = ["train", f"--framework={framework}", *WORKLOAD, f"--workers={workers}"]
        command = child_command(python, "dlport", [*args, f"--json={out}"])
        subprocess.run(
            command, env=subprocess_env(), cwd=tmp, check=True, capture_output=True, timeout=600
        )
        return json.loads(out.read_text())["timing"]["steps_per_second"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for name in data_parallel_names():
        python = find_python(name, {})
        if python is None:
            rows.append({"framework": name, "skipped": "no env for it here"})
            continue
        speeds = {
            w: statistics.median(steps_per_second(python, name, w) for _ in range(args.repeats))
            for w in (1, args.workers)
        }
        one, many = speeds[1], speeds[args.workers]
        overhead_us = (1 / many - 1 / one) * 1e6
        rows.append({"framework": name, "steps_per_second": speeds, "overhead_us": overhead_us})
        print(f"{name}: 1 process {one:,.0f} steps/s, {args.workers} workers {many:,.0f} steps/s")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; medium workload "
        f"(n=100000, d=16, batch 256, float32, CPU), median of {args.repeats}; steady-state "
        "steps/s of rank 0.",
        "",
        f"| framework | 1 process steps/s | {args.workers} workers steps/s | "
        "per-step cost of the collective |",
        "|---|---|---|---|",
    ]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['framework']} | - | - | {row['skipped']} |")
            continue
        one, many = row["steps_per_second"][1], row["steps_per_second"][args.workers]
        lines.append(
            f"| {row['framework']} | {one:,.0f} | {many:,.0f} | {row['overhead_us']:,.0f} us |"
        )
    out = ROOT / "bench" / "results" / f"{stamp}-data-parallel"
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"results: {out}.md (and .json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
