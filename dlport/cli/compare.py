"""`dlport compare`: run every framework in its own env and report parity with NumPy."""

from __future__ import annotations

import argparse
import sys

from dlport.cli.options import (
    add_data_arguments,
    add_python_argument,
    add_track_argument,
    add_train_arguments,
    add_worker_arguments,
    config_from_args,
    config_to_args,
    framework_list,
    positive_seconds,
    tracking_from,
)
from dlport.cli.parser import command
from dlport.common.registry import ported_names

HELP = (
    "run every framework in its own env and report parity with NumPy",
    "Train every framework, each in its own environment, on the same data, batch order "
    "and initial weights, once per optimizer; report each one's parity with the NumPy "
    "reference and its quality (report.md, report.json, PNG plots).",
    "dlport compare --data diabetes --frameworks torch,jax --optimizers sgd,adam --epochs 20",
)


def add_parser(sub) -> None:
    compare = command(sub, "compare", HELP)
    compare.add_argument(
        "--frameworks",
        default=",".join(ported_names()),
        help="comma-separated (default: %(default)s)",
    )
    compare.add_argument(
        "--optimizers",
        default="sgd,momentum,nesterov,adam,exact",
        help="comma-separated runs; 'exact' is the least-squares solver",
    )
    add_data_arguments(compare, required=False)
    add_train_arguments(compare, single_run=False)
    add_worker_arguments(compare, single_run=False)
    compare.add_argument("--out", metavar="DIR", help="report folder (default: runs/<timestamp>)")
    add_python_argument(compare)
    compare.add_argument(
        "--timeout",
        type=positive_seconds,
        default=900.0,
        help="seconds allowed to one framework run (default: %(default)s)",
    )
    add_track_argument(compare)
    compare.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import importlib.util
    import time
    from pathlib import Path

    from dlport.common.data import load_dataset
    from dlport.common.envs import parse_python_overrides
    from dlport.compare import report
    from dlport.compare.run import compare, parse_cases

    frameworks = framework_list(args.frameworks)
    cases = parse_cases(args.optimizers)
    overrides = parse_python_overrides(args.python)
    base = config_from_args(args)
    data = load_dataset(args.data, args.target, max_memory=args.max_memory)
    out = Path(args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
    track = tracking_from(args)
    train_args = config_to_args
    if track:
        from dlport import tracking

        parent = tracking.open_parent(
            track,
            f"compare {args.data}",
            {"data": args.data, "frameworks": ",".join(frameworks), "cases": ",".join(cases)}
            | base.to_dict(),
        )

        def train_args(config):  # each child logs its own run, and model, under the parent
            return [*config_to_args(config), "--track", track, "--track-parent", parent]

    comparison = compare(
        data, base, frameworks, cases, out, train_args, overrides, args.timeout, args.workers
    )
    report.write(comparison, out)
    plots = importlib.util.find_spec("matplotlib") is not None
    if plots:  # every file before the first line printed: `| head` must not lose one
        from dlport.compare.plots import write_plots

        write_plots(comparison, out)
    code, verdict = _compare_verdict(comparison)
    if track:
        tracking.log_comparison(track, parent, comparison, out, code)
    report.print_terminal(comparison)
    if not plots:
        print("plots skipped: install matplotlib (pip install 'dlport[plot]')")
    print(f"report: {out / 'report.md'}")
    if track:
        print(f"MLflow run {parent} (a child run per framework and case) logged to {track}")
    if verdict:
        print(verdict, file=sys.stderr)
    return code


def _compare_verdict(comparison) -> tuple[int, str]:
    """compare's exit code and why it is not 0."""
    from dlport.compare import report

    if not comparison.all_ran:
        return 4, "not every framework ran (see above)"
    if not comparison.all_agree:
        return 5, "some framework is outside the parity tolerance (see above)"
    gone = report.diverged(comparison)
    if gone:
        return 6, f"diverged (quality column): {', '.join(gone)}; lower --lr"
    return 0, ""
