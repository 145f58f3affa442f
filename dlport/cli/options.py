"""The arguments several commands share, and TrainConfig to and from them."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os

from dlport.common.config import DEVICES, DTYPES, OPTIMIZERS, SOLVERS, TrainConfig, parse_batch_size
from dlport.common.errors import DlportError
from dlport.common.registry import ported_names

DEFAULTS = TrainConfig()


def positive_seconds(text: str) -> float:
    """A --timeout: finite and above zero (nan, inf and 0 would time nothing out, or all)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def add_python_argument(parser: argparse.ArgumentParser) -> None:
    """compare's and bench's: which interpreter runs a framework."""
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a framework's interpreter (default: the env `dlport env create` built, else "
        "<project>/.tox/<env>/bin/python)",
    )


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
    parser.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="what training may hold, e.g. 512MB or 4GB (default: half the memory available); "
        "larger data streams from disk a window of rows at a time (docs/design.md)",
    )


def add_worker_arguments(parser: argparse.ArgumentParser, *, single_run: bool = True) -> None:
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="train data-parallel in N worker processes on the framework's own engine "
        "(DDP, tf.distribute, MXNet's kvstore); each global batch is split into N shards "
        "(docs/design.md); default 1",
    )
    if not single_run:
        return
    parser.add_argument(
        "--rank",
        type=int,
        metavar="R",
        help="across machines: this process is worker R of --workers N (start one per "
        "machine; no local launch)",
    )
    parser.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="across machines: rank 0's rendezvous address (torch, JAX) or MXNet's scheduler",
    )
    parser.add_argument(
        "--worker-timeout",
        type=positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long a worker waits on a silent peer before the run fails; default 60",
    )


def worker_group(args: argparse.Namespace):
    """This process's WorkerGroup: launched by ``--workers`` here, or ``--rank`` of a run across
    machines; None when it is the launcher or the run has one process."""
    from dlport.common.parallel import PARENT_ENV, WorkerGroup, parse_coordinator, watch_launcher

    if args.workers < 1:
        raise DlportError(f"--workers must be a positive integer, got {args.workers}")
    launched = WorkerGroup.from_env(args.worker_timeout)
    if launched is None and PARENT_ENV in os.environ:  # a service process must never launch
        raise DlportError("a process started by --workers has no rank; it does not launch")
    if launched is not None:
        watch_launcher()
        return launched
    if args.workers == 1:
        return None
    if args.rank is None:
        if args.coordinator:
            raise DlportError("--coordinator needs --rank R (a run across machines)")
        return None
    if not 0 <= args.rank < args.workers or not args.coordinator:
        raise DlportError(
            f"--rank must be in 0..{args.workers - 1} and come with --coordinator HOST:PORT"
        )
    coordinator = parse_coordinator(args.coordinator)
    return WorkerGroup(args.rank, args.workers, coordinator, args.worker_timeout)


def add_train_arguments(parser: argparse.ArgumentParser, *, single_run: bool = True) -> None:
    # A flag not given stays out of the namespace (SUPPRESS), so that a resume can tell the
    # flags a user gave from the defaults; the help shows each default instead.
    d = DEFAULTS

    def add(flag: str, text: str = "", none: str = "full", **kwargs) -> None:
        default = getattr(d, flag[2:].replace("-", "_"))
        shown = none if default is None else default
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
    add(
        "--clip-norm",
        "scale each step's gradient to a global norm (all parameters as one vector) of at most C",
        none="none",
        type=float,
        metavar="C",
    )
    add(
        "--weight-decay",
        "L2 on the weights, not the bias, as the framework's own option applies it (coupled "
        "or decoupled: docs/design.md); adamw: decoupled",
        type=float,
        metavar="W",
    )
    add(
        "--lr-schedule",
        "the learning rate per update step: constant, step:EPOCHS:GAMMA, exponential:GAMMA "
        "(GAMMA per epoch) or cosine (to 0 at the last epoch)",
        metavar="SCHEDULE",
    )
    add("--warmup-epochs", "a linear warmup of K epochs before the schedule", type=int, metavar="K")
    add("--loss", "mse, mae or huber:DELTA (the exact solver: mse)", metavar="LOSS")
    add(
        "--validation",
        "hold out this fraction of the rows (drawn by --seed) and score them every epoch",
        type=float,
        metavar="FRACTION",
    )
    add(
        "--early-stopping",
        "stop once the validation loss has not improved for this many epochs",
        none="off",
        type=int,
        metavar="PATIENCE",
    )
    parser.add_argument(
        "--restore-best",
        action="store_true",
        default=argparse.SUPPRESS,
        help="with --early-stopping: end on the weights of the best validation epoch",
    )
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
        "--no-intercept",
        dest="fit_intercept",
        action="store_false",
        default=argparse.SUPPRESS,
        help="fit through the origin: no bias (standardization scales, does not center)",
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


_NEGATED = {"standardize": "--no-standardize", "fit_intercept": "--no-intercept"}


def config_to_args(config: TrainConfig) -> list[str]:
    """The `dlport train` arguments that reproduce ``config`` (the inverse of the above)."""
    args = []
    for name, value in config.to_dict().items():
        if name in _NEGATED:
            args += [] if value else [_NEGATED[name]]
        elif name in ("tf32", "restore_best"):
            args += [f"--{name.replace('_', '-')}"] if value else []
        elif name == "batch_size":
            args += ["--batch-size", "full" if value is None else str(value)]
        elif value is None:  # an option not set (--clip-norm)
            continue
        else:
            args += [
                f"--{name.replace('_', '-')}",
                repr(value) if isinstance(value, float) else str(value),
            ]
    return args


def framework_list(text: str) -> list[str]:
    from dlport.common.registry import check_name

    names = [f.strip() for f in text.split(",") if f.strip()]
    for name in names:
        check_name(name)
    if not names or "numpy" in names:
        raise DlportError(
            f"--frameworks takes some of {', '.join(ported_names())} (numpy always runs)"
        )
    return names


def tracking_from(args: argparse.Namespace) -> str | None:
    """The absolute MLflow URI to log to, or None; MLflow is checked for before any training."""
    if getattr(args, "track_parent", None) and args.track is None:
        raise DlportError("--track-parent needs --track URI (the parent run's tracking URI)")
    if args.track is None:
        return None
    from dlport.tracking import check, tracking_uri

    uri = tracking_uri(args.track or None)
    check(uri)
    return uri
