"""`dlport compare` over every real framework env (the registry's): every port must agree."""

from __future__ import annotations

import json

import pytest

from dlport.cli import main
from dlport.common.registry import ported_names


@pytest.mark.parametrize(
    "args",
    [
        [],  # the README's main job: float64, every optimizer and the exact solver
        ["--dtype", "float32", "--optimizers", "sgd,adam"],
    ],
    ids=["float64-all", "float32"],
)
def test_every_framework_runs_and_agrees(tmp_path, args):
    out = tmp_path / "report"
    code = main(["compare", "--data", "diabetes", "--out", str(out), *args])
    report = json.loads((out / "report.json").read_text())
    failures = [
        (case["name"], name, row["status"], row["reason"], row["parity"])
        for case in report["cases"]
        for name, row in case["frameworks"].items()
        if row["status"] != "ok" or not row["parity"]["passed"]
    ]
    assert failures == []
    assert code == 0
    assert list(report["cases"][0]["frameworks"]) == ported_names()
    assert (out / "loss_curves.png").exists() and (out / "loss_difference.png").exists()
