"""`dlport frameworks`: list frameworks, versions and devices."""

from __future__ import annotations

import argparse
import json

from dlport.cli.parser import command
from dlport.common.errors import DlportError

HELP = (
    "list frameworks, versions and devices",
    "List every framework dlport has a port for: whether it imports in this environment, "
    "its version and its devices.",
    "dlport frameworks --json",
)


def add_parser(sub) -> None:
    frameworks = command(sub, "frameworks", HELP)
    frameworks.add_argument("--json", action="store_true", help="print JSON instead of a table")
    frameworks.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dlport.common.registry import FRAMEWORKS, get_trainer

    rows = []
    for name, entry in FRAMEWORKS.items():
        row = {
            "framework": name,
            "available": False,
            "version": "",
            "devices": [],
            "install": f"tox -e {entry.tox_env}",
            "data_parallel": entry.data_parallel,
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
        ["framework", "imports", "version", "devices", "--workers", "where to run it"],
        [
            [
                r["framework"],
                "yes" if r["available"] else "no",
                r["version"],
                ",".join(r["devices"]),
                "yes" if r["data_parallel"] else "-",
                "" if r["available"] else r["install"],
            ]
            for r in rows
        ],
    )
    return 0
