"""``dlport train | predict | export | compare | bench | env | frameworks``: one module per
command (its arguments and what it runs), argparse, one-line errors, exit codes 0 / 2 (bad
input) / 3 (divergence) / 4-6 (compare) / 130 (Ctrl-C). Importing it imports no framework."""

from dlport.cli.main import main
from dlport.cli.options import config_from_args, config_to_args
from dlport.cli.parser import build_parser

__all__ = ["build_parser", "config_from_args", "config_to_args", "main"]
