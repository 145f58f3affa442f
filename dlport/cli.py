"""``dlport train | predict | export | compare | bench | env | frameworks``: argparse, one-line
errors, exit codes 0 / 2 (bad input) / 3 (divergence) / 4-6 (compare) / 130 (Ctrl-C). Importing
this module imports no framework."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import textwrap

from dlport import __version__
from dlport.common.config import (
    DEVICES,
    DTYPES,
    OPTIMIZERS,
    RESUME_MAY_CHANGE,
    SOLVERS,
    TrainConfig,
    parse_batch_size,
)
from dlport.common.errors import DlportError, Interrupted
from dlport.common.registry import ported_names

DEFAULTS = TrainConfig()


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), like dlport's own errors."""

    def error(self, message: str):
        raise DlportError(f"{message} (see `{self.prog} --help`)")


# Each command: (one-line help, what it does, an example); `dlport CMD --help` shows all three.
COMMANDS = {
    "train": (
        "train one framework on one dataset",
        "Train linear regression (MSE) with one framework's own layers, loss and optimizer, "
        "or solve it exactly; print the metrics and weights, optionally write the result "
        "JSON and a checkpoint any framework can resume, predict with or export.",
        "dlport train --framework torch --data prices.csv --target price --optimizer adam "
        "--epochs 100 --json result.json --checkpoint run.ckpt.json",
    ),
    "predict": (
        "predict with a checkpoint, in any framework",
        "Predict with a checkpoint's model in any framework (not only the one that trained it); "
        "columns are matched by name; the metrics are printed when the data has the target.",
        "dlport predict --checkpoint run.ckpt.json --data new.parquet --framework mxnet "
        "--out predictions.csv",
    ),
    "export": (
        "save a checkpoint's model in a framework's format",
        "Write a checkpoint's model in a framework's own file format, in original units and "
        "the run's dtype.",
        "dlport export --checkpoint run.ckpt.json --framework torch --out model.pt",
    ),
    "compare": (
        "run every framework in its own env and report parity with NumPy",
        "Train every framework, each in its own environment, on the same data, batch order "
        "and initial weights, once per optimizer; report each one's parity with the NumPy "
        "reference and its quality (report.md, report.json, PNG plots).",
        "dlport compare --data diabetes --frameworks torch,jax --optimizers sgd,adam --epochs 20",
    ),
    "bench": (
        "throughput and time to quality, every framework",
        "Measure each framework's training throughput and time to reach the reference's "
        "loss, on CPU and GPU, against the NumPy loop in the same run (table, JSON, charts).",
        "dlport bench --workloads tiny,medium --frameworks torch,tensorflow --repeats 3",
    ),
    "env": (
        "create, list or remove a framework's own environment",
        "Build a framework's isolated venv (dlport with that framework's extra and pins) under "
        "your data directory (DLPORT_ENVS overrides it), where compare and bench find it from "
        "any folder; list or remove them.",
        "dlport env create mxnet --python python3.11 && dlport compare --frameworks mxnet",
    ),
    "frameworks": (
        "list frameworks, versions and devices",
        "List every framework dlport has a port for: whether it imports in this environment, "
        "its version and its devices.",
        "dlport frameworks --json",
    ),
}


def _command(sub, name: str) -> argparse.ArgumentParser:
    help_, description, example = COMMANDS[name]
    return sub.add_parser(
        name,
        help=help_,
        description=textwrap.fill(description, 79),
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dlport",
        description="One linear-regression trainer ported to several frameworks, proven equal "
        "by parity tests. `dlport COMMAND --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"dlport {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, help="`dlport COMMAND --help`"
    )

    train = _command(sub, "train")
    train.add_argument("--framework", help=f"numpy (default) | {' | '.join(ported_names())}")
    add_data_arguments(train, required=None)
    add_train_arguments(train)
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
    train.set_defaults(func=cmd_train)

    predict = _command(sub, "predict")
    predict.add_argument("--checkpoint", required=True, metavar="PATH", help="the trained run")
    predict.add_argument(
        "--data",
        required=True,
        help="data holding the checkpoint's feature columns (any train --data; matched by "
        "name where the data names its columns)",
    )
    predict.add_argument(
        "--framework", default="numpy", help="framework that computes it (default: %(default)s)"
    )
    predict.add_argument(
        "--dtype", default="float64", choices=DTYPES, help="computed in (default: %(default)s)"
    )
    predict.add_argument(
        "--device", default="auto", choices=DEVICES, help="computed on (default: %(default)s)"
    )
    predict.add_argument("--out", metavar="FILE", help="CSV of predictions (default: stdout)")
    predict.set_defaults(func=cmd_predict)

    export = _command(sub, "export")
    export.add_argument("--checkpoint", required=True, metavar="PATH", help="the trained run")
    export.add_argument(
        "--framework", required=True, help="whose format: " + " | ".join(ported_names())
    )
    export.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="torch: .pt (state_dict); tensorflow, keras-*: .keras; mxnet: .params; "
        "jax: .msgpack (flax); any framework: .onnx (its own exporter where it has one)",
    )
    export.add_argument(
        "--dtype", choices=DTYPES, help="stored and computed in (default: the run's dtype)"
    )
    export.set_defaults(func=cmd_export)

    compare = _command(sub, "compare")
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
    compare.add_argument("--out", metavar="DIR", help="report folder (default: runs/<timestamp>)")
    compare.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a framework's interpreter (default: <project>/.tox/<env>/bin/python)",
    )
    compare.add_argument(
        "--timeout",
        type=positive_seconds,
        default=900.0,
        help="seconds allowed to one framework run (default: %(default)s)",
    )
    add_track_argument(compare)
    compare.set_defaults(func=cmd_compare)

    bench = _command(sub, "bench")
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
    bench.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a framework's interpreter (default: <project>/.tox/<env>/bin/python)",
    )
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
    bench.set_defaults(func=cmd_bench)

    env = _command(sub, "env")
    actions = env.add_subparsers(
        dest="action", required=True, parser_class=_Parser, help="what to do"
    )
    create = actions.add_parser("create", help="build (or rebuild) NAME's env")
    create.add_argument("name", metavar="NAME", help=" | ".join(ported_names()))
    create.add_argument(
        "--python", metavar="PATH", help="the interpreter to build it with (default: this one)"
    )
    create.add_argument(
        "--pip",
        action="append",
        default=[],
        metavar="ARG",
        help="an argument for pip install, e.g. --pip=--index-url=URL (repeatable)",
    )
    create.add_argument(
        "--from",
        dest="source",
        metavar="PATH",
        help="install dlport from this folder or wheel (default: this source checkout, "
        "else this version from the package index)",
    )
    create.add_argument(
        "--with",
        dest="also",
        default="",
        metavar="EXTRAS",
        help="more of dlport's extras, comma-separated: mlflow (for compare --track), onnx, "
        "sklearn, plot, cli",
    )
    remove = actions.add_parser("remove", help="delete NAME's env")
    remove.add_argument("name", metavar="NAME", help=" | ".join(ported_names()))
    listing = actions.add_parser("list", help="the envs built, their Python and where")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    env.set_defaults(func=cmd_env)

    frameworks = _command(sub, "frameworks")
    frameworks.add_argument("--json", action="store_true", help="print JSON instead of a table")
    frameworks.set_defaults(func=cmd_frameworks)
    return parser


def positive_seconds(text: str) -> float:
    """A --timeout: finite and above zero (nan, inf and 0 would time nothing out, or all)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def add_track_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--track",
        nargs="?",
        const="",
        metavar="URI",
        help="log to MLflow (pip install 'dlport[mlflow]'): a URI, a .db file or an mlruns "
        "folder (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)",
    )


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool | None = True) -> None:
    """``required=None``: no default, but the command may find the data elsewhere (--resume)."""
    parser.add_argument(
        "--data",
        required=bool(required),
        default="diabetes" if required is False else None,
        help="a .csv or .csv.gz (header row), .npz (X, y), .parquet (or a folder of parts), "
        ".feather or .arrow file, 'diabetes', or 'synthetic:n=1000,d=8,noise=0.1,seed=0'"
        + ("; with --resume, default: the checkpoint's data" if required is None else ""),
    )
    parser.add_argument("--target", help="target column by name (default: the last column)")


def add_train_arguments(parser: argparse.ArgumentParser, *, single_run: bool = True) -> None:
    # A flag not given stays out of the namespace (SUPPRESS), so that a resume can tell the
    # flags a user gave from the defaults; the help shows each default instead.
    d = DEFAULTS

    def add(flag: str, text: str = "", **kwargs) -> None:
        default = getattr(d, flag[2:].replace("-", "_"))
        shown = "full" if default is None else default
        text = f"{text}; default {shown}" if text else f"default {shown}"
        parser.add_argument(flag, default=argparse.SUPPRESS, help=text, **kwargs)

    if single_run:
        add("--optimizer", "the update rule (docs/design.md gives each)", choices=OPTIMIZERS)
        add(
            "--solver",
            "gd: gradient descent; exact: the framework's least squares",
            choices=SOLVERS,
        )
    add("--lr", "learning rate", type=float)
    add("--momentum", "momentum and nesterov's coefficient", type=float)
    add("--beta1", "Adam's first-moment decay", type=float)
    add("--beta2", "Adam's second-moment decay", type=float)
    add("--eps", "Adam's epsilon (passed to every framework: their defaults differ)", type=float)
    add("--epochs", "passes over the data", type=int)
    add(
        "--batch-size",
        "rows per step; full: the whole data",
        type=parse_batch_size,
        metavar="N|full",
    )
    add("--seed", "seeds the initial weights and the batch order", type=int)
    add("--dtype", "training precision", choices=DTYPES)
    add("--device", "auto: the GPU when the framework sees one", choices=DEVICES)
    parser.add_argument(
        "--no-standardize",
        dest="standardize",
        action="store_false",
        default=argparse.SUPPRESS,
        help="train on raw features and target",
    )
    parser.add_argument(
        "--tf32",
        action="store_true",
        default=argparse.SUPPRESS,
        help="NVIDIA GPUs, float32: allow TF32 matmuls (faster, about 1e-3 relative; "
        "off by default, as parity needs)",
    )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    given = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    if hasattr(args, "batch_size"):  # None is meaningful there: full batch
        given["batch_size"] = args.batch_size
    return TrainConfig(**given)


def config_to_args(config: TrainConfig) -> list[str]:
    """The `dlport train` arguments that reproduce ``config`` (the inverse of the above)."""
    args = []
    for name, value in config.to_dict().items():
        if name == "standardize":
            args += [] if value else ["--no-standardize"]
        elif name == "tf32":
            args += ["--tf32"] if value else []
        elif name == "batch_size":
            args += ["--batch-size", "full" if value is None else str(value)]
        else:
            args += [
                f"--{name.replace('_', '-')}",
                repr(value) if isinstance(value, float) else str(value),
            ]
    return args


def cmd_train(args: argparse.Namespace) -> int:
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
    if args.data is None and not resume:
        raise DlportError("--data is required (a file, 'diabetes' or 'synthetic:...')")
    if args.data is None:  # the checkpoint's own data (its fingerprint is checked in fit)
        saved = resume.payload["data"]
        args.data, args.target = saved["source"], args.target or _named_target(saved)
    data = load_dataset(args.data, args.target)
    track = _tracking(args)
    summary_file = sys.stderr if args.json == "-" else sys.stdout
    try:
        print(describe_columns(data, args.target), file=summary_file, flush=True)
    except BrokenPipeError:  # nobody reads: train anyway, the files are what the run is for
        _reader_gone(summary_file)
    trainer = get_trainer(framework)
    interrupt = args.checkpoint or args.resume or f"dlport-interrupted-{framework}.ckpt.json"
    checkpointing = Checkpointing(
        path=Path(args.checkpoint) if args.checkpoint else None,
        every=args.checkpoint_every,
        interrupt_path=Path(interrupt),
    )
    callbacks = [ProgressBar(), checkpointing]
    result = trainer.fit(data, config, callbacks=callbacks, resume=resume)
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


def _tracking(args: argparse.Namespace) -> str | None:
    """The absolute MLflow URI to log to, or None; MLflow is checked for before any training."""
    if getattr(args, "track_parent", None) and args.track is None:
        raise DlportError("--track-parent needs --track URI (the parent run's tracking URI)")
    if args.track is None:
        return None
    from dlport.tracking import check, tracking_uri

    uri = tracking_uri(args.track or None)
    check(uri)
    return uri


def cmd_predict(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from dlport.common.atomic import write_text_atomic
    from dlport.common.checkpoint import Checkpoint
    from dlport.common.data import load_features
    from dlport.common.metrics import regression_metrics
    from dlport.common.registry import check_name, get_trainer

    if args.out and os.path.exists(args.out):
        for option, given in (("--data", args.data.strip()), ("--checkpoint", args.checkpoint)):
            # samefile sees through symlinks and hard links; a bundled name is no file
            if os.path.isfile(given) and os.path.samefile(args.out, given):
                raise DlportError(f"--out {args.out} is the {option} file; give another path")
    checkpoint = Checkpoint.read(args.checkpoint)
    check_name(args.framework)
    saved = checkpoint.payload["data"]
    X, y = load_features(args.data, saved["feature_names"], saved["target"])
    weights, bias = checkpoint.model
    trainer = get_trainer(args.framework)
    predictions = trainer.predict(weights, bias, X, dtype=args.dtype, device=args.device)
    buffer = io.StringIO()
    np.savetxt(buffer, predictions, fmt="%.17g", header="prediction", comments="")
    if args.out:
        write_text_atomic(args.out, buffer.getvalue())
        print(f"{len(predictions)} predictions written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(buffer.getvalue())
    if y is not None:
        metrics = regression_metrics(y, predictions)
        print("  ".join(f"{k} {v:.6g}" for k, v in metrics.items()), file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from dlport.common.checkpoint import Checkpoint
    from dlport.common.registry import check_name, get_trainer

    checkpoint = Checkpoint.read(args.checkpoint)
    check_name(args.framework)
    weights, bias = checkpoint.model
    dtype = args.dtype or checkpoint.payload["config"]["dtype"]
    names = checkpoint.payload["data"]["feature_names"]
    trainer = get_trainer(args.framework)
    if args.out.endswith(".onnx"):
        how = trainer.export_onnx(weights, bias, args.out, dtype, names)
        print(f"ONNX model ({dtype}) written to {args.out} by {how}; its inputs, in order: {names}")
        return 0
    if args.framework == "numpy":
        raise DlportError(
            "numpy has no native model format; the checkpoint itself is NumPy's "
            "(--out FILE.onnx exports ONNX)"
        )
    trainer.export_native(weights, bias, args.out, dtype)
    print(f"{args.framework} model ({dtype}) written to {args.out}; its inputs, in order: {names}")
    return 0


def _names_columns(source: str) -> bool:
    """Whether a data source has columns to pick a target from (not an NPZ or synthetic data)."""
    return not (source.endswith(".npz") or source.startswith("synthetic"))


def _named_target(saved_data: dict) -> str | None:
    """The saved target where the data names its columns."""
    return saved_data["target"] if _names_columns(saved_data["source"]) else None


def describe_columns(data, target: str | None, shown: int = 8) -> str:
    """What trains on what, said before training: the target is otherwise a silent default."""
    names = list(data.feature_names)
    features = ", ".join(names[:shown]) + (
        f", ... ({len(names)} in all)" if len(names) > shown else ""
    )
    how = (
        " (--target)"
        if target
        else " (the last column; --target NAME picks another)"
        if _names_columns(data.source)
        else ""
    )
    return (
        f"data {data.source}: {data.n_samples} rows; target {data.target_name!r}{how}; "
        f"features: {features}"
    )


def print_summary(result, file) -> None:
    from dlport.console import print_table

    timing = result.timing
    speed = timing.get("steps_per_second")
    print(
        f"{result.framework} {result.framework_version} on {result.device}, {result.dtype}, "
        f"{result.config['solver']}"
        + ("" if result.config["solver"] == "exact" else f" {result.config['optimizer']}")
        + f": fit {timing['fit_seconds']:.3f} s"
        + (f", {speed:,.0f} steps/s" if speed else ""),
        file=file,
    )
    if result.history["loss"]:
        print(f"final epoch loss (standardized): {result.history['loss'][-1]:.6g}", file=file)
    print_table(
        "metrics (training data)", ["metric", "value"], list(result.metrics.items()), file=file
    )
    rows = list(zip(result.data["feature_names"], result.weights, strict=True)) + [
        ("(bias)", result.bias)
    ]
    print_table(
        f"weights (original units, target {result.data['target']})",
        ["feature", "weight"],
        rows,
        file=file,
    )


def cmd_compare(args: argparse.Namespace) -> int:
    import importlib.util
    import time
    from pathlib import Path

    from dlport.common.data import load_dataset
    from dlport.common.envs import parse_python_overrides
    from dlport.compare import report
    from dlport.compare.run import compare, parse_cases

    frameworks = _framework_list(args.frameworks)
    cases = parse_cases(args.optimizers)
    overrides = parse_python_overrides(args.python)
    base = config_from_args(args)
    data = load_dataset(args.data, args.target)
    out = Path(args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
    track = _tracking(args)
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

    comparison = compare(data, base, frameworks, cases, out, train_args, overrides, args.timeout)
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


def _framework_list(text: str) -> list[str]:
    from dlport.common.registry import check_name

    names = [f.strip() for f in text.split(",") if f.strip()]
    for name in names:
        check_name(name)
    if not names or "numpy" in names:
        raise DlportError(
            f"--frameworks takes some of {', '.join(ported_names())} (numpy always runs)"
        )
    return names


def cmd_bench(args: argparse.Namespace) -> int:
    import importlib.util
    from pathlib import Path

    from dlport.bench import report
    from dlport.bench.harness import check_workloads, run_bench, summarize
    from dlport.common.envs import parse_python_overrides

    frameworks = _framework_list(args.frameworks)
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


def cmd_env(args: argparse.Namespace) -> int:
    from dlport.common import user_envs

    if args.action == "create":
        also = [name.strip() for name in args.also.split(",") if name.strip()]
        python = user_envs.create(
            args.name, args.python, args.pip, args.source, also, progress=True
        )
        print(f"{args.name} env ready: {python} (compare and bench use it)")
    elif args.action == "remove":
        print(f"removed {user_envs.remove(args.name)}")
    elif args.json:
        print(json.dumps(user_envs.listed(), indent=2))
    else:
        from dlport.console import print_table

        rows = [[e["framework"], e["python"], e["created"], e["path"]] for e in user_envs.listed()]
        title = f"dlport envs ({user_envs.envs_home()})"
        print_table(title, ["framework", "python", "created", "path"], rows)
    return 0


def cmd_frameworks(args: argparse.Namespace) -> int:
    from dlport.common.registry import FRAMEWORKS, get_trainer

    rows = []
    for name, entry in FRAMEWORKS.items():
        row = {
            "framework": name,
            "available": False,
            "version": "",
            "devices": [],
            "install": f"tox -e {entry.tox_env}",
            "reason": "",
        }
        try:
            trainer = get_trainer(name)
            row.update(available=True, version=trainer.version(), devices=trainer.devices())
        except DlportError as exc:
            row["reason"] = str(exc)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from dlport.console import print_table

    print_table(
        "frameworks in this environment",
        ["framework", "imports", "version", "devices", "where to run it"],
        [
            [
                r["framework"],
                "yes" if r["available"] else "no",
                r["version"],
                ",".join(r["devices"]),
                "" if r["available"] else r["install"],
            ]
            for r in rows
        ],
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    terminated = False

    def on_sigterm(signum, frame):
        # Stop as on Ctrl-C (train saves its last complete epoch; compare and bench end their
        # children), but exit 143. A second SIGTERM gets the previous handler: ends it at once.
        nonlocal terminated
        terminated = True
        signal.signal(signal.SIGTERM, previous)
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGTERM)
    if previous is None:  # set outside Python: restore the default
        previous = signal.SIG_DFL
    try:
        signal.signal(signal.SIGTERM, on_sigterm)
        installed = True
    except ValueError:  # not the main thread: leave signals to whoever runs us
        installed = False
    args = before = None
    try:
        args = build_parser().parse_args(argv)
        before = _file_state(getattr(args, "checkpoint", None))
        code = args.func(args)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except DlportError as exc:
        print(f"dlport: error: {exc}", file=sys.stderr)
        if isinstance(exc, Interrupted) and terminated:
            return 128 + signal.SIGTERM
        return exc.exit_code
    except BrokenPipeError:  # the reader went away (`| head`): a normal end, files are written
        _reader_gone(sys.stdout)
        return 0
    except OSError as exc:  # a path the user gave cannot be written or read
        where = exc.filename or _output_paths(args) or "an output path"
        print(
            f"dlport: error: cannot use {where} ({exc.strerror or exc}); give another path",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        how = "terminated (SIGTERM)" if terminated else "interrupted"
        command = getattr(args, "command", None)
        if command != "train":
            print(f"dlport: {how}; {command or 'dlport'} stopped", file=sys.stderr)
        elif _file_state(args.checkpoint) != before:  # fit had ended and written it
            print(f"dlport: {how}; checkpoint written to {args.checkpoint}", file=sys.stderr)
        else:  # fitting saves the last complete epoch itself (Interrupted) when there is one
            print(f"dlport: {how} before the first epoch ended; nothing saved", file=sys.stderr)
        return 128 + signal.SIGTERM if terminated else 130
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous)


def _reader_gone(stream) -> None:
    """Point ``stream`` at /dev/null: what is still printed (and Python's flush at exit) goes
    nowhere instead of failing again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def _file_state(path: str | None):
    """(size, mtime) of ``path``, None if absent: whether this run wrote it."""
    try:
        stat = os.stat(path) if path else None
    except OSError:
        return None
    return stat and (stat.st_size, stat.st_mtime_ns)


def _output_paths(args) -> str:
    """The paths this command writes, as given: what an OSError naming no file is about."""
    given = [(o, getattr(args, o, None)) for o in ("out", "json", "checkpoint")]
    return ", ".join(f"--{o} {v}" for o, v in given if isinstance(v, str) and v != "-")
