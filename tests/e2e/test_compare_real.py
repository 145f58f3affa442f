"""`dlport compare` over every real framework env (the registry's): every port must agree."""

from __future__ import annotations

import json

import pytest

from dlport.cli import main
from dlport.common.registry import ported_names

# The options where frameworks disagree (docs/design.md), together
OPTIONS = ["--weight-decay", "0.01", "--clip-norm", "1", "--lr-schedule", "cosine"]
OPTIONS += ["--warmup-epochs", "2", "--validation", "0.2"]


@pytest.mark.parametrize(
    "args",
    [
        [],  # the README's main job: float64, every optimizer and the exact solver
        ["--dtype", "float32", "--optimizers", "sgd,adam"],
        # each optimizer's options in-process: test_conformance; here the conventions report
        [*OPTIONS, "--optimizers", "momentum,adamw,exact"],
    ],
    ids=["float64-all", "float32", "options"],
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
    if OPTIONS[0] in args:  # each convention the run touches is named, with its size
        momentum = next(case for case in report["cases"] if case["name"] == "momentum")
        notes = momentum["frameworks"]["tensorflow"]["parity"]["conventions"]
        named = " ".join(note["difference"] for note in notes)
        assert "decoupled" in named and "lr-scaled steps" in named and notes[0]["size"] > 1e-3


def test_every_framework_streams_a_parquet_file_past_max_memory_agrees_and_is_tracked(tmp_path):
    """One compare run (each child costs its framework's start) checks both: every framework
    streams the file and agrees, and MLflow gets a parent run with every framework's child."""
    import mlflow
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dlport.common.data import load_dataset

    data = load_dataset("synthetic:n=4096,d=8,noise=0.1,seed=3")
    columns = dict(zip(data.feature_names, data.X.T, strict=True)) | {"y": data.y}
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table(columns), path, row_group_size=64)  # 64 row groups
    out, uri = tmp_path / "report", f"sqlite:///{tmp_path / 'mlflow.db'}"
    streaming = ["--data", str(path), "--max-memory", "200KB", "--batch-size", "64"]
    code = main(["compare", *streaming, "--optimizers", "momentum,adam,exact", "--epochs", "3",
                 "--out", str(out), "--track", uri])  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    rows = [row for case in report["cases"] for row in case["frameworks"].values()]
    assert [(r["status"], r["parity"]["passed"]) for r in rows] == [("ok", True)] * len(rows)
    assert code == 0
    streamed = json.loads(next((out / "results").glob("torch-adam.json")).read_text())
    assert streamed["data"]["streamed"] == {"max_memory": 200000, "window_rows": 231, "blocks": 64}

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["dlport"], output_format="list")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in runs if r is not parent}
    cases = ("momentum", "adam", "exact")
    assert set(children) == {
        f"{name} {case}" for name in ["numpy", *ported_names()] for case in cases
    }
    for name, child in children.items():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED" and child.data.metrics["mse"] > 0
        if not name.startswith("numpy"):  # parity is measured against the reference
            assert child.data.tags["parity"] == "pass", name
            assert parent.data.metrics[f"parity_params_diff.{name.replace(' ', '.')}"] < 1e-9
    assert parent.info.status == "FINISHED" and parent.data.tags["exit_code"] == "0"
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"report.md", "report.json", "loss_curves.png", "results"} <= logged
