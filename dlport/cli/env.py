"""`dlport env`: create, list or remove a framework's own environment."""

from __future__ import annotations

import argparse
import json

from dlport.cli.parser import Parser, command
from dlport.common.registry import ported_names

HELP = (
    "create, list or remove a framework's own environment",
    "Build a framework's isolated venv (dlport with that framework's extra and pins) under "
    "your data directory (DLPORT_ENVS overrides it), where compare and bench find it from "
    "any folder; list or remove them.",
    "dlport env create mxnet --python python3.11 && dlport compare --frameworks mxnet",
)


def add_parser(sub) -> None:
    env = command(sub, "env", HELP)
    actions = env.add_subparsers(
        dest="action", required=True, parser_class=Parser, help="what to do"
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
    env.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
