"""`dlport train`: train one framework on one dataset."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys

from dlport.cli.options import (
    add_data_arguments,
    add_track_argument,
    add_train_arguments,
    add_worker_arguments,
    config_from_args,
    tracking_from,
    worker_group,
)
from dlport.cli.output import describe_columns, named_target, print_summary, reader_gone
from dlport.cli.parser import command
from dlport.common.config import RESUME_MAY_CHANGE, TrainConfig
from dlport.common.errors import DlportError
from dlport.common.registry import ported_names

HELP = (
    "train one framework on one dataset",
    "Train linear regression (MSE) with one framework's own layers, loss and optimizer, "
    "or solve it exactly; print the metrics and weights, optionally write the result "
    "JSON and a checkpoint any framework can resume, predict with or export.",
    "dlport train --framework torch --data prices.csv --target price --optimizer adam "
    "--epochs 100 --json result.json --checkpoint run.ckpt.json",
)


def add_parser(sub) -> None:
    train = command(sub, "train", HELP)
    train.add_argument("--framework", help=f"numpy (default) | {' | '.join(ported_names())}")
    add_data_arguments(train, required=None)
    add_train_arguments(train)
    add_worker_arguments(train)
    train.add_argument("--json", metavar="PATH|-", help="write the result object (- = stdout)")
    train.add_argument("--checkpoint", metavar="PATH", help="write a checkpoint at the end")
    train.add_argument(
        "--checkpoint-every", type=int, metavar="K", help="also write it every K epochs"
    )
    train.add_argument(
        "--resume",
        metavar="PATH",
        help="continue from a checkpoint, with its settings (only --epochs, --device and --tf32 "
        "may change)",
    )
    add_track_argument(train)
    train.add_argument(
        "--track-parent", metavar="RUN_ID", help="log the run as a child of this MLflow run"
    )
    train.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dlport.common.callbacks import ProgressBar
    from dlport.common.checkpoint import Checkpoint, Checkpointing, check_resume_framework
    from dlport.common.data import load_dataset
    from dlport.common.registry import check_name, get_trainer

    resume = Checkpoint.read(args.resume) if args.resume else None
    if resume:
        framework = args.framework or resume.framework
        saved = TrainConfig.from_dict(resume.payload["config"])
        names = [f.name for f in dataclasses.fields(TrainConfig)]
        given = {n: getattr(args, n) for n in names if hasattr(args, n)}  # SUPPRESS: given only
        # --epochs may grow the run. --device may change: weights and optimizer state are plain
        # numbers, a device changes only the rounding (within README's tolerances), and a saved
        # "auto" already means different devices on different machines. --tf32 likewise.
        config = saved.replace(**{k: v for k, v in given.items() if k in RESUME_MAY_CHANGE})
        changed = []
        for name, value in given.items():
            before = getattr(saved, name)
            if name in RESUME_MAY_CHANGE or value == before:
                continue
            if name == "standardize":
                changed.append("--no-standardize differs from the checkpoint's standardized run")
                continue
            shown = ["full" if v is None else str(v) for v in (value, before)]  # batch size
            flag = "--" + name.replace("_", "-")
            changed.append(f"{flag} {shown[0]} differs from the checkpoint's {shown[1]}")
        if changed:
            raise DlportError(
                f"{'; '.join(changed)}; resume keeps the run's settings "
                "(only --epochs, --device and --tf32 may change)"
            )
    else:
        framework = args.framework or "numpy"
        config = config_from_args(args)
    if args.checkpoint_every is not None and (args.checkpoint_every < 1 or not args.checkpoint):
        raise DlportError("--checkpoint-every needs a positive K and --checkpoint PATH")
    check_name(framework)
    if resume:
        check_resume_framework(resume, framework)  # before importing a framework for nothing
    group = worker_group(args)
    if args.workers > 1 and group is None:
        return launch_workers(framework, config, args)
    leader = group is None or group.leader
    if args.data is None and not resume:
        raise DlportError("--data is required (a file, 'diabetes' or 'synthetic:...')")
    if args.data is None:  # the checkpoint's own data (its fingerprint is checked in fit)
        saved = resume.payload["data"]
        args.data, args.target = saved["source"], args.target or named_target(saved)
    data = load_dataset(args.data, args.target, max_memory=args.max_memory)
    if not leader:  # the leader (rank 0) prints, checkpoints and writes the result
        with lost_peers(group):
            get_trainer(framework).fit(data, config, resume=resume, group=group)
        return 0
    track = tracking_from(args)
    summary_file = sys.stderr if args.json == "-" else sys.stdout
    try:
        print(describe_columns(data, args.target), file=summary_file, flush=True)
    except BrokenPipeError:  # nobody reads: train anyway, the files are what the run is for
        reader_gone(summary_file)
    trainer = get_trainer(framework)
    interrupt = args.checkpoint or args.resume or f"dlport-interrupted-{framework}.ckpt.json"
    checkpointing = Checkpointing(
        path=Path(args.checkpoint) if args.checkpoint else None,
        every=args.checkpoint_every,
        interrupt_path=Path(interrupt),
    )
    callbacks = [ProgressBar(), checkpointing]
    with lost_peers(group):
        result = trainer.fit(data, config, callbacks=callbacks, resume=resume, group=group)
    if args.json and args.json != "-":  # files first: a reader that stops early loses nothing
        result.write_json(args.json)
    print_summary(result, summary_file)
    if args.json == "-":
        sys.stdout.write(result.to_json() + "\n")
    elif args.json:
        print(f"result written to {args.json}", file=summary_file)
    if args.checkpoint:
        print(f"checkpoint written to {args.checkpoint}", file=summary_file)
    if track:
        from dlport.tracking import log_run

        run_id = log_run(track, result, trainer, parent_run_id=args.track_parent)
        print(f"MLflow run {run_id} logged to {track}", file=summary_file)
    return 0


@contextlib.contextmanager
def lost_peers(group):
    """In a worker, an engine's error (a peer gone: its connection reset, a collective timed
    out) as one line; the launcher names the worker that failed first."""
    try:
        yield
    except (DlportError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if group is None:
            raise
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise DlportError(
            f"worker rank {group.rank} stopped: {type(exc).__name__}: {first[:300]}"
        ) from None


def launch_workers(framework: str, config: TrainConfig, args: argparse.Namespace) -> int:
    """``--workers N`` on this machine: N copies of this command, one per rank, on the
    framework's engine; what is refused before any starts is refused here."""
    from dlport.common.parallel import check_divisible, launch_local
    from dlport.common.registry import get_trainer

    trainer = get_trainer(framework)
    trainer.check_data_parallel()
    if config.solver == "gd" and config.batch_size is not None:
        check_divisible(config.batch_size, args.workers)
    return launch_local(
        args.argv,
        args.workers,
        lambda ports: trainer.worker_plan(args.workers, ports),
    )
