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


def test_compare_logs_a_parent_run_with_every_frameworks_child_to_mlflow(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "report"
    code = main(["compare", "--optimizers", "adam,exact", "--epochs", "5", "--out", str(out),
                 "--track", uri])  # fmt: skip
    assert code == 0
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["dlport"], output_format="list")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in runs if r is not parent}
    expected = {
        f"{name} {case}" for name in ["numpy", *ported_names()] for case in ("adam", "exact")
    }
    assert set(children) == expected
    for name, child in children.items():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED" and child.data.metrics["mse"] > 0
        if not name.startswith("numpy"):  # parity is measured against the reference
            assert child.data.tags["parity"] == "pass", name
            assert parent.data.metrics[f"parity_params_diff.{name.replace(' ', '.')}"] < 1e-9
    assert parent.info.status == "FINISHED" and parent.data.tags["exit_code"] == "0"
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"report.md", "report.json", "loss_curves.png", "results"} <= logged
