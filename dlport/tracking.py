"""Experiment tracking with MLflow (``--track [URI]`` on train and compare; ``dlport[mlflow]``).

A run logs its config as params, the per-epoch loss as a metric with steps, the final metrics
and timing, the result JSON, a loss plot, and the model in MLflow's own flavour for its
framework (``TrainerBase.log_mlflow_model``): ``mlflow.pyfunc.load_model`` predicts with it.
compare logs one parent run, a child run per framework and case (each logged by the child
process, in its own env, so the model is logged by its own framework), and the parity and
quality of each child on it.

The run is logged when training has ended (from the result): a run that fails logs nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

import dlport
from dlport.common.errors import DlportError
from dlport.common.results import TrainResult

INSTALL_HINT = "pip install 'dlport[mlflow]'"
EXPERIMENT = "dlport"
MODEL_FILE = "linear_model.json"


def import_mlflow():
    try:
        import mlflow
    except ImportError:
        raise DlportError(f"--track needs MLflow: {INSTALL_HINT}") from None
    return mlflow


def tracking_uri(value: str | None) -> str:
    """An absolute tracking URI: compare's children run in directories of their own.

    None: MLflow's own default (``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` here);
    a path: a SQLite file (``.db``) or an ``mlruns``-style folder; a URI as given, a relative
    SQLite or file path made absolute.
    """
    if value is None:
        value = os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    if value.startswith("sqlite:///"):
        return "sqlite:///" + str(Path(value.removeprefix("sqlite:///")).absolute())
    if value.startswith("file:"):
        return Path(value.removeprefix("file:").removeprefix("//")).absolute().as_uri()
    if "://" in value or value.startswith("databricks"):
        return value
    path = Path(value).absolute()
    return f"sqlite:///{path}" if path.suffix == ".db" else path.as_uri()


@contextlib.contextmanager
def session():
    """MLflow calls, quiet and with one-line errors: MLflow's INFO lines (database migrations,
    new experiments), the exporters' prints and the flavours' advice warnings are left out (the
    run's own output says what was logged where); an MLflow error is a DlportError."""
    mlflow = import_mlflow()
    log = logging.getLogger("mlflow")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield mlflow
    except mlflow.exceptions.MlflowException as exc:
        raise DlportError(f"MLflow: {' '.join(exc.message.split())}") from None
    finally:
        log.setLevel(level)


def connect(uri: str):
    """Point MLflow at ``uri`` and the dlport experiment (``MLFLOW_EXPERIMENT_NAME`` wins),
    creating either if new; return the experiment. Call inside ``session()``."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT)


def check(uri: str) -> None:
    """Fail now, before any training, if the store cannot be reached or made."""
    with session():
        connect(uri)


def case_name(result: TrainResult) -> str:
    """compare's case of a run: its optimizer, or 'exact' for the least-squares solver."""
    return "exact" if result.config["solver"] == "exact" else result.config["optimizer"]


def _params(result: TrainResult) -> dict[str, object]:
    config = {k: "full" if v is None and k == "batch_size" else v for k, v in result.config.items()}
    return {
        **config,
        "framework": result.framework,
        "framework_version": result.framework_version,
        "device": result.device,
        "data": result.data["source"],
        "target": result.data.get("target"),
        "n_samples": result.data["n_samples"],
        "n_features": result.data["n_features"],
    }


def _loss_figure(result: TrainResult):
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, nothing to close

    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    loss = result.history["loss"]
    ax.plot(range(1, len(loss) + 1), loss)
    ax.set(xlabel="epoch", ylabel="training MSE (standardized)", yscale="log")
    ax.set_title(f"{result.framework} {case_name(result)}")
    fig.tight_layout()
    return fig


def log_run(
    uri: str,
    result: TrainResult,
    trainer,
    parent_run_id: str | None = None,
    run_name: str | None = None,
) -> str:
    """Log one finished training run (and its model, by ``trainer``); return its run id."""
    name = run_name or f"{result.framework} {case_name(result)}"
    with session() as mlflow:
        from mlflow.entities import Metric

        connect(uri)
        with mlflow.start_run(run_name=name, parent_run_id=parent_run_id) as run:
            mlflow.log_params(_params(result))
            stamp = int(run.info.start_time)
            history = enumerate(result.history["loss"], 1)
            losses = [Metric("loss", float(v), stamp, step) for step, v in history]
            client = mlflow.MlflowClient()
            for start in range(0, len(losses), 1000):  # MLflow's batch limit
                client.log_batch(run.info.run_id, metrics=losses[start : start + 1000])
            mlflow.log_metrics({**result.metrics, **result.timing})
            mlflow.log_dict(result.to_dict(), "result.json")
            if result.history["loss"]:
                mlflow.log_figure(_loss_figure(result), "loss.png")
            trainer.log_mlflow_model(
                np.asarray(result.weights), result.bias, result.dtype, result.data["feature_names"]
            )
            return run.info.run_id


def open_parent(uri: str, name: str, params: dict[str, object]) -> str:
    """compare's parent run, open while the children log under it; return its id."""
    with session() as mlflow:
        from mlflow.entities import Param

        experiment = connect(uri)
        client = mlflow.MlflowClient()
        run = client.create_run(experiment.experiment_id, run_name=name)
        listed = [Param(key, str(value)) for key, value in params.items()]
        client.log_batch(run.info.run_id, params=listed)
        return run.info.run_id


def log_comparison(uri: str, parent_id: str, comparison, out: Path, exit_code: int) -> None:
    """Close compare's parent run: the NumPy reference of each case as a child like the
    others, each child's parity and quality on it and on the parent, the report files."""
    from dlport.compare.quality import quality
    from dlport.frameworks.numpy.trainer import NumpyTrainer

    for case in comparison.cases:
        log_run(uri, case.reference, NumpyTrainer(), parent_run_id=parent_id)
    optimum_mse = comparison.optimum["metrics"]["mse"]
    with session() as mlflow:
        experiment = connect(uri)
        client = mlflow.MlflowClient()
        children = client.search_runs(
            [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'"
        )
        child_ids = {run.info.run_name: run.info.run_id for run in children}
        for case in comparison.cases:
            for framework, row in case.rows.items():
                run_id = child_ids.get(f"{framework} {case.name}")
                tags = {"outcome": row.outcome.status}
                metrics = {}
                if row.parity:
                    metrics = {"parity_params_diff": row.parity.params_diff}
                    if row.parity.loss_diff is not None:
                        metrics["parity_loss_diff"] = row.parity.loss_diff
                    tags["parity"] = "pass" if row.parity.passed else "FAIL"
                    tags["quality"] = quality(row.outcome.result, optimum_mse)
                for key, value in metrics.items():
                    client.log_metric(parent_id, f"{key}.{framework}.{case.name}", value)
                    if run_id:
                        client.log_metric(run_id, key, value)
                for key, value in tags.items():
                    client.set_tag(parent_id, f"{key}.{framework}.{case.name}", value)
                    if run_id:
                        client.set_tag(run_id, key, value)
        for path in sorted(out.iterdir()):
            if path.is_file() and path.suffix in {".md", ".json", ".png"}:
                client.log_artifact(parent_id, str(path))
        client.log_artifacts(parent_id, str(out / "results"), "results")
        client.set_tag(parent_id, "exit_code", str(exit_code))
        client.set_terminated(parent_id, "FINISHED" if exit_code == 0 else "FAILED")


def model_arguments(framework: str, weights, dtype: str, feature_names) -> dict[str, object]:
    """What every flavour's ``log_model`` is given: the signature (rows of ``dtype`` in, one
    column out: a float64 model keeps float64 inputs), the feature order and run dtype as
    metadata, and the pip requirement ``dlport[<framework's extra>]``, pinned (MLflow's own
    inference of requirements loads the model in a subprocess, seconds a run)."""
    from mlflow.models import infer_signature

    from dlport.common.registry import check_name

    extra = check_name(framework).extra
    requirement = (f"dlport[{extra}]" if extra else "dlport") + f"=={dlport.__version__}"
    X = np.zeros((2, len(weights)), dtype=dtype)
    return {
        "name": "model",
        "signature": infer_signature(X, np.zeros((2, 1), dtype=dtype)),
        "metadata": {"feature_names": list(feature_names), "dtype": dtype},
        "pip_requirements": [requirement],
    }


def log_pyfunc_model(framework: str, weights, bias: float, dtype: str, feature_names) -> None:
    """The model as an MLflow pyfunc that predicts with ``framework``'s own forward pass."""
    mlflow = import_mlflow()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / MODEL_FILE
        saved = {"framework": framework, "dtype": dtype, "weights": list(map(float, weights))}
        path.write_text(json.dumps({**saved, "bias": float(bias)}))
        mlflow.pyfunc.log_model(
            python_model=str(Path(__file__).with_name("mlflow_pyfunc.py")),  # models from code
            artifacts={"model": str(path)},
            **model_arguments(framework, weights, dtype, feature_names),
        )
