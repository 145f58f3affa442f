"""`dlport export`: save a checkpoint's model in a framework's format."""

from __future__ import annotations

import argparse

from dlport.cli.parser import command
from dlport.common.config import DTYPES
from dlport.common.errors import DlportError
from dlport.common.registry import ported_names

HELP = (
    "save a checkpoint's model in a framework's format",
    "Write a checkpoint's model in a framework's own file format, in original units and "
    "the run's dtype.",
    "dlport export --checkpoint run.ckpt.json --framework torch --out model.pt",
)


def add_parser(sub) -> None:
    export = command(sub, "export", HELP)
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
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
