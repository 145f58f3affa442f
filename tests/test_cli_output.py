"""What train says before it trains, output that a pipe cuts short, and options that do not
apply to the data given."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_cli import assert_one_line_error, dlport


def _into_a_closed_pipe(*args, cwd):
    """Run dlport with stdout a pipe nobody reads (as `| head` leaves it): writes get EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "dlport", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            timeout=300,
        )
    finally:
        os.close(write_end)


def test_a_closed_pipe_ends_train_normally_after_the_result_file_is_written(tmp_path):
    run = _into_a_closed_pipe(
        "train", "--data", "diabetes", "--epochs", "2", "--json", "r.json", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # no "Broken pipe", no "Exception ignored"
    assert json.loads((tmp_path / "r.json").read_text())["history"]["loss"]


def test_a_closed_pipe_ends_json_to_stdout_normally(tmp_path):
    run = _into_a_closed_pipe(
        "train", "--data", "diabetes", "--epochs", "2", "--json", "-", cwd=tmp_path
    )
    assert run.returncode == 0 and "Traceback" not in run.stderr and "Broken" not in run.stderr


@pytest.mark.parametrize(
    ("spec", "why"),
    [("data.npz", "it holds X and y apart"), ("synthetic:n=50", "it generates its target y")],
    ids=["npz", "synthetic"],
)
def test_target_is_refused_where_the_data_has_no_columns_to_choose(tmp_path, spec, why):
    if spec.endswith(".npz"):
        np.savez(tmp_path / spec, X=np.ones((5, 2)), y=np.arange(5.0))
    run = dlport("train", "--data", spec, "--target", "price", cwd=tmp_path)
    assert_one_line_error(run, 2, f"a target column does not apply to {spec}: {why}")


def test_train_first_says_which_column_is_the_target_and_which_are_features(tmp_path):
    csv = tmp_path / "prices.csv"
    csv.write_text("price,rooms,area\n1,2,3\n2,3,5\n3,5,7\n4,4,9\n")
    default = dlport("train", "--data", str(csv), "--epochs", "1").stdout.splitlines()[0]
    assert default == (
        f"data {csv}: 4 rows; target 'area' (the last column; --target NAME picks another); "
        "features: price, rooms"
    )
    chosen = dlport("train", "--data", str(csv), "--target", "price", "--epochs", "1")
    assert chosen.stdout.splitlines()[0].endswith(
        "target 'price' (--target); features: rooms, area"
    )
    piped = dlport("train", "--data", "synthetic:n=20,d=10", "--epochs", "1", "--json", "-")
    assert piped.stderr.splitlines()[0] == (
        "data synthetic:n=20,d=10,noise=0.1,seed=0: 20 rows; target 'y'; "
        "features: x0, x1, x2, x3, x4, x5, x6, x7, ... (10 in all)"
    )
    assert json.loads(piped.stdout)["data"]["n_samples"] == 20  # stdout holds the JSON alone


@pytest.mark.parametrize(
    ("data", "target"),
    [("diabetes", "bmi"), ("synthetic:n=40,d=3", None), ("data.npz", None)],
    ids=["bundled-with-target", "synthetic", "npz"],
)
def test_resume_takes_the_checkpoints_data_when_data_is_omitted(tmp_path, data, target):
    if data == "data.npz":
        np.savez(tmp_path / data, X=np.arange(20.0).reshape(10, 2) % 7, y=np.arange(10.0))
    first = ["train", "--data", data, "--epochs", "2", "--checkpoint", "c.json", "--json", "-"]
    assert dlport(*first, *(["--target", target] if target else []), cwd=tmp_path).returncode == 0
    resumed = dlport("train", "--resume", "c.json", "--epochs", "4", "--json", "-", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    whole = dlport(
        *first[:4], "4", "--json", "-", *(["--target", target] if target else []), cwd=tmp_path
    )
    a, b = json.loads(resumed.stdout), json.loads(whole.stdout)
    assert a["weights"] == b["weights"] and a["data"]["target"] == b["data"]["target"]


def test_train_without_data_or_resume_is_one_line():
    assert_one_line_error(dlport("train"), 2, "--data is required")


def _flags(parser) -> set[str]:
    """A command's --flags, its subcommands' included (dlport env create --python ...)."""
    flags = {s for a in parser._actions for s in a.option_strings if s.startswith("--")}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                flags |= _flags(child)
    return flags - {"--help"}


def test_every_command_has_a_description_an_example_and_help_on_every_option():
    from dlport.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    for name, parser in commands.items():
        assert parser.description and parser.epilog.startswith("example:\n  dlport " + name)
        for action in parser._actions:
            assert action.help, f"dlport {name} {action.option_strings} has no help"


def test_readme_lists_the_options_each_command_has():
    """The README's synopsis and the parser name the same flags ([train options]: train's)."""
    import re
    from pathlib import Path

    from dlport.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    synopsis = readme.split("## The command line\n\n```\n", 1)[1].split("```", 1)[0]
    listed: dict[str, set[str]] = {}
    for line in synopsis.splitlines():
        command = re.match(r"dlport (\w+)", line)
        name = command.group(1) if command else name  # noqa: F821 - a continuation line
        listed.setdefault(name, set()).update(re.findall(r"--[a-z0-9-]+", line.split("#")[0]))
        if "[train options]" in line:
            listed[name] |= _flags(commands["compare"]) & _flags(commands["train"])
    assert {n: sorted(f) for n, f in listed.items()} == {
        n: sorted(_flags(p)) for n, p in commands.items()
    }
