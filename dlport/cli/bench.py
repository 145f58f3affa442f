"""`dlport bench`: throughput and time to quality, every framework."""

from __future__ import annotations

import argparse

from dlport.cli.options import add_python_argument, framework_list, positive_seconds
from dlport.cli.parser import command
from dlport.common.config import DTYPES
from dlport.common.errors import DlportError
from dlport.common.registry import ported_names

HELP = (
    "throughput and time to quality, every framework",
    "Measure each framework's training throughput and time to reach the reference's "
    "loss, on CPU and GPU, against the NumPy loop in the same run (table, JSON, charts).",
    "dlport bench --workloads tiny,medium --frameworks torch,tensorflow --repeats 3",
)


def add_parser(sub) -> None:
    bench = command(sub, "bench", HELP)
    bench.add_argument(
        "--frameworks",
        default=",".join(ported_names()),
        help="comma-separated; the NumPy reference and loop always run (default: %(default)s)",
    )
    bench.add_argument(
        "--workloads",
        default="tiny,medium,large,full",
        help="data sizes, comma-separated (default: %(default)s)",
    )
    bench.add_argument(
        "--devices", default="cpu", help="cpu, gpu or cpu,gpu (default: %(default)s)"
    )
    bench.add_argument("--dtype", default="float32", choices=DTYPES, help="default: %(default)s")
    bench.add_argument(
        "--repeats", type=int, default=5, help="timed runs per row (default: %(default)s)"
    )
    bench.add_argument(
        "--out",
        default="bench/results",
        help="folder for JSON, table, charts (default: %(default)s)",
    )
    add_python_argument(bench)
    bench.add_argument(
        "--no-tf32",
        dest="tf32",
        action="store_false",
        help="GPU rows keep full float32 matmuls (default: TF32 allowed, as speed runs would)",
    )
    bench.add_argument(
        "--timeout",
        type=positive_seconds,
        default=1200.0,
        help="seconds allowed to one framework on one workload (default: %(default)s)",
    )
    bench.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import importlib.util
    from pathlib import Path

    from dlport.bench import report
    from dlport.bench.harness import check_workloads, run_bench, summarize
    from dlport.common.envs import parse_python_overrides

    frameworks = framework_list(args.frameworks)
    workloads = check_workloads([w.strip() for w in args.workloads.split(",") if w.strip()])
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    if not devices or set(devices) - {"cpu", "gpu"}:
        raise DlportError(f"--devices takes cpu, gpu or cpu,gpu, got {args.devices!r}")
    if args.repeats < 1:
        raise DlportError("--repeats must be at least 1")
    overrides = parse_python_overrides(args.python)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    measurements = run_bench(
        frameworks,
        workloads,
        devices,
        args.dtype,
        args.repeats,
        overrides,
        args.timeout,
        out,
        tf32=args.tf32,
    )
    rows = summarize(measurements)
    info = report.meta(args.dtype, args.repeats)
    table = report.write(rows, info, out)
    if importlib.util.find_spec("matplotlib"):
        report.write_charts(rows, out, info["stamp"])
    report.print_terminal(rows)
    print(f"results: {table} (and .json, -throughput.png beside it)")
    return 0 if all(r["status"] in ("ok", "no-device") for r in rows) else 4
