"""`dlport predict`: predict with a checkpoint, in any framework."""

from __future__ import annotations

import argparse
import os
import sys

from dlport.cli.parser import command
from dlport.common.config import DEVICES, DTYPES
from dlport.common.errors import DlportError

HELP = (
    "predict with a checkpoint, in any framework",
    "Predict with a checkpoint's model in any framework (not only the one that trained it); "
    "columns are matched by name; the metrics are printed when the data has the target.",
    "dlport predict --checkpoint run.ckpt.json --data new.parquet --framework mxnet "
    "--out predictions.csv",
)


def add_parser(sub) -> None:
    predict = command(sub, "predict", HELP)
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
    predict.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
