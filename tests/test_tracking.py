"""MLflow tracking: what a run logs, read back with MLflow's own API, and the model logged in
the framework's flavour predicting what ``dlport predict`` does."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow  # every tox env installs dlport[mlflow]
import numpy as np
import pytest
from test_cli import dlport

from dlport import tracking
from dlport.common.config import TrainConfig
from dlport.common.errors import DlportError

# MLflow's flavour for each framework that has one (README, "Tracking"); the rest: pyfunc.
FLAVOUR = {"torch": "pytorch", "tensorflow": "keras", "keras-jax": "keras", "keras-torch": "keras"}
# Keras' model.predict, which mlflow.keras' pyfunc calls, casts float64 rows to floatx (float32)
# on the backends without a SavedModel export (README, "Tracking").
KERAS_PREDICT_CASTS = {"keras-jax", "keras-torch"}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_logged_run_reads_back_and_its_model_predicts_like_dlport(
    trainer, diabetes, tmp_path, dtype
):
    result = trainer.fit(diabetes, TrainConfig(optimizer="adam", epochs=4, dtype=dtype))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = tracking.log_run(uri, result, trainer)

    mlflow.set_tracking_uri(uri)
    run = mlflow.get_run(run_id)
    assert run.info.run_name == f"{trainer.name} adam" and run.info.status == "FINISHED"
    assert run.data.params["optimizer"] == "adam" and run.data.params["dtype"] == dtype
    assert run.data.params["framework"] == trainer.name and run.data.params["epochs"] == "4"
    history = mlflow.MlflowClient().get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == list(enumerate(result.history["loss"], 1))
    assert {k: run.data.metrics[k] for k in result.metrics} == result.metrics
    logged = mlflow.artifacts.load_text(f"runs:/{run_id}/result.json")
    assert json.loads(logged) == json.loads(result.to_json())
    plot = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/loss.png", dst_path=tmp_path)
    assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    info = mlflow.models.get_model_info(f"runs:/{run_id}/model")
    assert set(info.flavors) == {"python_function", FLAVOUR.get(trainer.name, "python_function")}
    assert info.metadata == {"feature_names": list(diabetes.feature_names), "dtype": dtype}
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    X = diabetes.X.astype(dtype)
    got = np.asarray(model.predict(X)).reshape(-1)
    expected = trainer.predict(result.weights, result.bias, diabetes.X, dtype=dtype, device="cpu")
    if dtype == "float64" and trainer.name in KERAS_PREDICT_CASTS:
        difference = np.max(np.abs(got - expected) / np.abs(expected))
        assert 1e-12 < difference < 1e-6  # the float32 cast, named and sized: not more
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-12 if dtype == "float64" else 1e-6)


def test_cli_train_logs_a_run_and_says_where(tmp_path):
    db = tmp_path / "runs.db"
    run = dlport("train", "--data", "diabetes", "--epochs", "3", "--track", str(db))
    assert run.returncode == 0, run.stderr
    last = run.stdout.splitlines()[-1]
    assert last.startswith("MLflow run ") and last.endswith(f" logged to sqlite:///{db}")
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    (logged,) = mlflow.search_runs(experiment_names=["dlport"], output_format="list")
    assert logged.info.run_id == last.split()[2]
    assert logged.data.params["data"] == "diabetes"


def test_tracking_errors_are_one_line_before_any_training(tmp_path):
    parent_only = dlport("train", "--data", "diabetes", "--track-parent", "abc")
    assert parent_only.returncode == 2
    assert parent_only.stderr == (
        "dlport: error: --track-parent needs --track URI (the parent run's tracking URI)\n"
    )
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the database's folder would be
    bad = dlport("train", "--data", "diabetes", "--track", f"sqlite:///{blocked}/x.db")
    assert bad.returncode == 2 and bad.stderr == (
        f"dlport: error: cannot use {blocked} (File exists); give another path\n"
    )
    # MLflow's own refusal (its file store, in maintenance since MLflow 3), in one line
    folder = dlport("train", "--data", "diabetes", "--track", str(tmp_path / "mlruns"))
    assert folder.returncode == 2 and len(folder.stderr.splitlines()) == 1, folder.stderr
    assert folder.stderr.startswith("dlport: error: MLflow: ") and "sqlite" in folder.stderr
    assert "final epoch loss" not in bad.stdout + folder.stdout  # refused before training


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("runs.db", "sqlite:///{cwd}/runs.db"),
        ("sqlite:///runs.db", "sqlite:///{cwd}/runs.db"),
        ("sqlite:////abs/runs.db", "sqlite:////abs/runs.db"),
        ("mlruns", "file://{cwd}/mlruns"),
        ("file:./mlruns", "file://{cwd}/mlruns"),
        ("http://localhost:5000", "http://localhost:5000"),
        ("databricks", "databricks"),
    ],
)
def test_tracking_uri_is_absolute_for_children_in_other_folders(
    monkeypatch, tmp_path, given, expected
):
    monkeypatch.chdir(tmp_path)
    assert tracking.tracking_uri(given) == expected.format(cwd=tmp_path)


def test_default_tracking_uri_is_mlflows_own(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri(None) == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracker:5000")
    assert tracking.tracking_uri(None) == "http://tracker:5000"


def test_missing_mlflow_is_one_line_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(DlportError, match=r"--track needs MLflow: pip install 'dlport\[mlflow\]'"):
        tracking.check("sqlite:///x.db")
