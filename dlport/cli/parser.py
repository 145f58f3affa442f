"""The `dlport` parser: one subparser per command, each defined by its own module."""

from __future__ import annotations

import argparse
import textwrap

from dlport import __version__
from dlport.common.errors import DlportError


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), like dlport's own errors."""

    def error(self, message: str):
        raise DlportError(f"{message} (see `{self.prog} --help`)")


def command(sub, name: str, help_: tuple[str, str, str]) -> argparse.ArgumentParser:
    """A command's subparser; ``help_`` is (one-line help, what it does, an example), which
    `dlport NAME --help` shows all of."""
    summary, description, example = help_
    return sub.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description, 79),
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    from dlport.cli import bench, compare, env, export, frameworks, predict, train

    parser = Parser(
        prog="dlport",
        description="One linear-regression trainer ported to several frameworks, proven equal "
        "by parity tests. `dlport COMMAND --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"dlport {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=Parser, help="`dlport COMMAND --help`"
    )
    for module in (train, predict, export, compare, bench, env, frameworks):
        module.add_parser(sub)
    return parser
