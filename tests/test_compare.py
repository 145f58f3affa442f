"""`dlport compare` orchestration, with fake framework envs that are real subprocesses."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from dlport.cli import main
from dlport.common.envs import SOURCE_ROOT, subprocess_env

FAKE = Path(__file__).parent / "fakes" / "fake_env.py"


def fake_python(tmp_path: Path, mode: str) -> str:
    """An executable that compare can start as an env's python (tests/fakes/fake_env.py)."""
    script = tmp_path / f"python-{mode}"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" {mode} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def run_compare(tmp_path, envs: dict[str, str], *extra: str):
    out = tmp_path / "report"
    args = [
        "compare",
        "--frameworks",
        ",".join(envs),
        "--out",
        str(out),
        "--epochs",
        "3",
        "--optimizers",
        "sgd,adam,exact",
        *extra,
    ]
    for name, mode in envs.items():
        python = mode if mode.startswith("/") else fake_python(tmp_path, mode)
        args += ["--python", f"{name}={python}"]
    code = main(args)
    report = (
        json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else None
    )
    return code, report, out


def statuses(report, case="sgd"):
    rows = next(c for c in report["cases"] if c["name"] == case)["frameworks"]
    return {name: row["status"] for name, row in rows.items()}


def test_all_good_agree_and_everything_is_written(tmp_path):
    code, report, out = run_compare(tmp_path, {"torch": "good", "mxnet": "good"})
    assert code == 0
    assert report["all_ran"] and report["all_agree"]
    case = report["cases"][0]
    assert case["frameworks"]["torch"]["parity"]["weights"] == 0.0
    assert case["pairwise"]["torch"]["mxnet"]["params"] == 0.0
    assert report["optimum"]["metrics"]["mse"] > 0
    for name in ("report.md", "loss_curves.png", "loss_difference.png", "data.npz"):
        assert (out / name).stat().st_size > 0
    assert (out / "loss_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_crash_garbage_and_missing_are_reported_and_the_rest_still_runs(tmp_path, capsys):
    code, report, _ = run_compare(
        tmp_path, {"torch": "good", "tensorflow": "crash", "mxnet": "/no/such/python"}
    )
    assert code == 4
    assert statuses(report) == {"torch": "ok", "tensorflow": "failed", "mxnet": "missing"}
    rows = report["cases"][0]["frameworks"]
    assert "simulated crash" in rows["tensorflow"]["reason"]
    assert "tox -e mxnet" in rows["mxnet"]["fix"]
    assert rows["torch"]["parity"]["passed"]
    printed = capsys.readouterr().out
    assert "not run" in printed and "simulated crash" in printed


def test_garbage_output_is_invalid(tmp_path):
    code, report, _ = run_compare(tmp_path, {"torch": "garbage"})
    assert code == 4
    assert statuses(report) == {"torch": "invalid"}
    assert "unusable result: Expecting value" in report["cases"][0]["frameworks"]["torch"]["reason"]


def test_a_run_that_hangs_times_out(tmp_path):
    code, report, _ = run_compare(
        tmp_path, {"torch": "slow"}, "--timeout", "2", "--optimizers", "sgd"
    )
    assert code == 4
    assert statuses(report) == {"torch": "timeout"}


def test_a_result_outside_tolerance_fails_parity(tmp_path):
    code, report, _ = run_compare(tmp_path, {"torch": "off"})
    assert code == 5
    parity = report["cases"][0]["frameworks"]["torch"]["parity"]
    assert not parity["passed"] and parity["weights"] > 1e-9


def test_a_diverged_run_is_named_apart_from_parity_and_exits_6(tmp_path, capsys):
    """MSE 6e73 is finite: parity passes (the reference diverged alike), quality does not."""
    code, report, out = run_compare(tmp_path, {"torch": "good"}, "--lr", "1", "--optimizers", "sgd")
    assert code == 6
    case = report["cases"][0]
    assert case["reference_quality"] == case["frameworks"]["torch"]["quality"] == "diverged"
    assert case["frameworks"]["torch"]["parity"]["passed"] and report["all_agree"]
    assert report["diverged"] == ["sgd/numpy", "sgd/torch"]
    printed = capsys.readouterr()
    assert "diverged (quality column): sgd/numpy, sgd/torch; lower --lr" in printed.err
    assert max(len(line) for line in printed.out.splitlines()) <= 100  # the terminal table
    assert "| diverged |" in (out / "report.md").read_text()


def test_report_md_gives_each_case_its_own_config_as_json(tmp_path):
    code, report, out = run_compare(tmp_path, {"torch": "good"}, "--optimizers", "adam,exact")
    assert code == 0 and [c["name"] for c in report["cases"]] == ["adam", "exact"]
    md = (out / "report.md").read_text()
    configs = [
        json.loads(line.split("`")[1]) for line in md.splitlines() if line.startswith("Config:")
    ]
    assert [(c["optimizer"], c["solver"]) for c in configs] == [("adam", "gd"), ("sgd", "exact")]
    assert "'optimizer'" not in md  # no Python dict
    assert {c["frameworks"]["torch"]["quality"] for c in report["cases"]} <= {"ok", "far"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frameworks", "torch,caffe"], "unknown framework 'caffe'"),
        (["--optimizers", "sgd,lbfgs"], "unknown optimizer"),
        (["--python", "torch"], "NAME=PATH"),
    ],
    ids=["unknown-framework", "unknown-optimizer", "bad-python"],
)
def test_bad_arguments_fail_before_anything_runs(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert main(["compare", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_subprocesses_run_this_source_tree_or_their_own_install():
    env = subprocess_env()
    if SOURCE_ROOT is None:  # installed (tox): no path of this env may reach another env
        assert "PYTHONPATH" not in env
    else:
        assert (SOURCE_ROOT / "dlport" / "__init__.py").exists()
        assert env["PYTHONPATH"] == str(SOURCE_ROOT)  # never an inherited one


def test_a_framework_this_python_cannot_run_is_reported_with_the_reason(tmp_path, monkeypatch):
    """tox skips such an env (toxfile.py); compare then says why, not just "no env"."""
    from dlport.common import envs, pythons

    monkeypatch.setitem(pythons.UNSUPPORTED_FROM, "torch", ((3, 0), "no wheels; use 3.x"))
    outcome = envs.run_json("torch", None, ["dlport", "train"], tmp_path / "r.json", 5)
    assert outcome.status == "missing"
    assert (
        outcome.reason.startswith("torch on Python 3.") and "no wheels; use 3.x" in outcome.reason
    )
    assert outcome.fix == (
        "dlport env create torch --python PATH, or --python torch=PATH, PATH a Python it supports"
    )
