"""The conformance suite (scikit-learn's check_estimator style): every framework passes the same
checks, on the path users get by default. Tolerances are docs/design.md's numerical contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dlport.common.callbacks import Callback, StopWhen
from dlport.common.checkpoint import Checkpoint, Checkpointing
from dlport.common.config import OPTIMIZERS, TrainConfig
from dlport.common.data import Dataset, load_dataset
from dlport.common.errors import DivergenceError, DlportError
from dlport.common.metrics import max_relative_difference
from dlport.common.results import TrainResult
from dlport.common.schedules import Schedule

# Max relative difference to the reference (|a - b| / max(1, |b|)), per dtype.
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}
EPOCHS = 8


def _params(result: TrainResult) -> np.ndarray:
    return np.append(result.weights, result.bias)


def test_fit_returns_a_complete_result(trainer, diabetes):
    config = TrainConfig(epochs=3, device="cpu")
    result = trainer.fit(diabetes, config)
    assert result.framework == trainer.name
    assert result.framework_version == trainer.version()
    assert (result.device, result.dtype) == ("cpu", "float64")
    assert len(result.weights) == diabetes.n_features
    assert len(result.history["loss"]) == 3
    assert set(result.metrics) == {"mse", "rmse", "mae", "r2"}
    assert result.timing["steps"] == 3 * math.ceil(442 / 32)
    assert result.config == config.to_dict()
    again = TrainResult.from_json(result.to_json())
    assert again == result
    json.loads(result.to_json())  # strict JSON: no NaN


def test_recovers_known_coefficients(trainer):
    data = load_dataset("synthetic:n=2000,d=5,noise=0.01,seed=3")
    result = trainer.fit(data, TrainConfig(optimizer="adam", lr=0.01, epochs=20, device="cpu"))
    np.testing.assert_allclose(result.weights, data.true_weights, atol=5e-3)
    assert abs(result.bias - data.true_bias) < 5e-3
    assert result.metrics["r2"] > 0.999


def test_same_seed_gives_identical_result(trainer, diabetes):
    config = TrainConfig(optimizer="adam", epochs=4, device="cpu")
    first, second = trainer.fit(diabetes, config), trainer.fit(diabetes, config)
    assert first.weights == second.weights and first.bias == second.bias
    assert first.history == second.history


def test_seed_changes_the_trajectory(trainer, diabetes):
    a = trainer.fit(diabetes, TrainConfig(epochs=2, seed=0, device="cpu"))
    b = trainer.fit(diabetes, TrainConfig(epochs=2, seed=1, device="cpu"))
    assert a.weights != b.weights


@pytest.mark.parametrize("batch_size", [32, None], ids=["batch32", "full"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_trajectory_matches_reference(trainer, reference, diabetes, optimizer, dtype, batch_size):
    lr = 0.01 if batch_size else 0.1
    config = TrainConfig(
        optimizer=optimizer, lr=lr, epochs=EPOCHS, batch_size=batch_size, dtype=dtype, device="cpu"
    )
    got = trainer.fit(diabetes, config)
    # float32 runs are held to the float64 reference: the error is the framework's, not ours.
    want = reference.fit(diabetes, config.replace(dtype="float64"))
    tol = TOLERANCE[dtype]
    assert max_relative_difference(got.history["loss"], want.history["loss"]) < tol
    assert max_relative_difference(_params(got), _params(want)) < tol


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_clipped_trajectory_matches_its_conventions_reference(
    trainer, reference, diabetes, optimizer, dtype
):
    """--clip-norm with the framework's own tool, against the reference of its convention
    (the epsilon each adds to the norm, and MXNet's norm of the batch-summed gradient)."""
    config = TrainConfig(optimizer=optimizer, clip_norm=0.5, epochs=EPOCHS, dtype=dtype)
    got = trainer.fit(diabetes, config.replace(device="cpu"))
    want = reference.fit(diabetes, config.replace(dtype="float64", device="cpu"))
    assert max_relative_difference(got.history["loss"], want.history["loss"]) < TOLERANCE[dtype]
    assert max_relative_difference(_params(got), _params(want)) < TOLERANCE[dtype]
    unclipped = reference.fit(diabetes, config.replace(clip_norm=None, dtype="float64"))
    assert max_relative_difference(_params(unclipped), _params(want)) > 1e-3  # it clipped


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_exact_solver_matches_numpy_lstsq(trainer, diabetes, dtype):
    result = trainer.fit(diabetes, TrainConfig(solver="exact", dtype=dtype, device="cpu"))
    design = np.hstack([diabetes.X, np.ones((diabetes.n_samples, 1))])
    expected = np.linalg.lstsq(design, diabetes.y, rcond=None)[0]
    assert max_relative_difference(_params(result), expected) < TOLERANCE[dtype]
    assert result.history["loss"] == []


def _polynomial(degree: int, dependent: bool = False) -> Dataset:
    """x, x^2, ..., x^degree on [0, 10]: raw columns spanning 1 .. 1e12, so a solver that
    truncates by singular value ratio (cutoff eps * max(n, p)) drops two directions unscaled."""
    x = np.linspace(0.0, 10.0, 200)
    X = np.stack([x**k for k in range(1, degree + 1)], axis=1)
    if dependent:
        X = np.hstack([X, X[:, :1] + X[:, 1:2]])
    names = tuple(f"x^{k}" for k in range(1, X.shape[1] + 1))
    return Dataset(X, np.sin(x), names, "y", "polynomial")


def test_exact_solver_scales_columns_before_its_one_rank_cutoff(trainer):
    """Unscaled, numpy's and torch's lstsq return a rank-11 fit (MSE 1e-5) where MXNet's LQ
    returns the full-rank one (MSE 5e-11): with the design's columns scaled, all agree."""
    config = TrainConfig(solver="exact", standardize=False, device="cpu")
    got = trainer.fit(_polynomial(12), config)
    assert got.metrics["mse"] < 1e-9
    with pytest.raises(DlportError, match=r"rank-deficient in float32 .*use --dtype float64"):
        trainer.fit(_polynomial(12), config.replace(dtype="float32"))


def test_exact_solver_refuses_dependent_columns_by_name(trainer):
    config = TrainConfig(solver="exact", standardize=False, device="cpu")
    with pytest.raises(DlportError, match=r"\['x\^1', 'x\^2', 'x\^4'\] are \(nearly\) linearly"):
        trainer.fit(_polynomial(3, dependent=True), config)


def test_exact_solver_gives_a_constant_feature_weight_zero(trainer, diabetes):
    """Standardized, a constant column is all zeros: every framework leaves it out (weight 0,
    the minimum-norm choice) instead of refusing it or solving a singular system."""
    X = np.hstack([diabetes.X, np.full((diabetes.n_samples, 1), 7.0)])
    data = Dataset(X, diabetes.y, (*diabetes.feature_names, "seven"), "y", "diabetes+constant")
    got = trainer.fit(data, TrainConfig(solver="exact", device="cpu"))
    plain = trainer.fit(diabetes, TrainConfig(solver="exact", device="cpu"))
    assert got.weights[-1] == 0.0
    assert max_relative_difference(got.weights[:-1], plain.weights) < TOLERANCE["float64"]


def test_predict_matches_the_linear_model(trainer, diabetes):
    w = np.linspace(-1.0, 1.0, diabetes.n_features)
    got = trainer.predict(w, 0.5, diabetes.X, dtype="float64", device="cpu")
    np.testing.assert_allclose(got, diabetes.X @ w + 0.5, rtol=1e-12, atol=1e-10)


def test_predict_refuses_wrong_feature_count(trainer, diabetes):
    with pytest.raises(DlportError, match="features"):
        trainer.predict(np.ones(3), 0.0, diabetes.X, device="cpu")


def test_divergence_is_reported(trainer, diabetes):
    with pytest.raises(DivergenceError, match="diverged at epoch"):
        trainer.fit(diabetes, TrainConfig(lr=5.0, epochs=20, standardize=False, device="cpu"))


def test_auto_device_is_one_it_has(trainer):
    assert trainer.resolve_device("auto") in trainer.devices()
    assert "cpu" in trainer.devices()


def test_gpu_request_without_gpu_is_refused(trainer, diabetes):
    if "gpu" in trainer.devices():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DlportError, match="no GPU"):
        trainer.fit(diabetes, TrainConfig(device="gpu"))


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_resume_continues_bit_for_bit(trainer, diabetes, tmp_path, optimizer):
    config = TrainConfig(optimizer=optimizer, epochs=4, device="cpu")
    full = trainer.fit(diabetes, config)
    path = tmp_path / "half.json"
    trainer.fit(diabetes, config.replace(epochs=2), callbacks=[Checkpointing(path=path)])
    checkpoint = Checkpoint.read(path)
    assert checkpoint.framework == trainer.name and checkpoint.epoch == 2
    resumed = trainer.fit(diabetes, config, resume=checkpoint)
    assert resumed.weights == full.weights and resumed.bias == full.bias
    assert resumed.history == full.history


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_native_export_round_trips(trainer, tmp_path, dtype):
    w = np.linspace(-3.0, 3.0, 7) / 3.0
    if trainer.native_suffix is None:
        with pytest.raises(DlportError, match="no native model format"):
            trainer.export_native(w, 0.25, str(tmp_path / "model"), dtype)
        return
    path = tmp_path / f"model{trainer.native_suffix}"
    trainer.export_native(w, 0.1, str(path), dtype)
    weights, bias = trainer.import_native(str(path))
    stored = w.astype(dtype).astype(np.float64)  # a float32 export holds float32 values
    assert weights.tolist() == stored.tolist() and bias == float(np.asarray(0.1, dtype))
    assert (dtype == "float64") == (weights.tolist() == w.tolist())
    X = np.arange(14.0).reshape(2, 7)
    np.testing.assert_allclose(trainer.predict(weights, bias, X, device="cpu"), X @ stored + bias)


def test_cli_export_keeps_the_runs_dtype_and_names_the_feature_order(trainer, tmp_path):
    from test_cli import dlport

    checkpoint = tmp_path / "c.json"
    trained = dlport("train", "--data", "diabetes", "--dtype", "float32", "--epochs", "2",
                     "--checkpoint", str(checkpoint))  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    out = tmp_path / f"model{trainer.native_suffix or ''}"
    run = dlport("export", "--checkpoint", str(checkpoint), "--framework", trainer.name,
                 "--out", str(out))  # fmt: skip
    if trainer.native_suffix is None:
        assert run.returncode == 2 and "no native model format" in run.stderr
        return
    assert run.returncode == 0, run.stderr
    names = load_dataset("diabetes").feature_names
    assert run.stdout == (
        f"{trainer.name} model (float32) written to {out}; its inputs, in order: {list(names)}\n"
    )
    weights, _ = trainer.import_native(str(out))
    saved = Checkpoint.read(checkpoint).model[0]
    assert weights.tolist() == np.asarray(saved, dtype=np.float32).astype(np.float64).tolist()


# -- data larger than memory (docs/design.md, "Data larger than memory") ------------------------
# 4096 x 8 under --max-memory 200KB: windows of 231 rows, 72 blocks of 57.
STREAM_SPEC, STREAM_BUDGET = "synthetic:n=4096,d=8,noise=0.1,seed=3", "200KB"


@pytest.fixture(scope="module")
def streamed():
    data = load_dataset(STREAM_SPEC, max_memory=STREAM_BUDGET)
    assert type(data).__name__ == "StreamedDataset" and data.window_rows < data.n_samples // 10
    return data


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_streamed_training_matches_reference(trainer, reference, streamed, optimizer, dtype):
    config = TrainConfig(optimizer=optimizer, epochs=3, batch_size=64, dtype=dtype, device="cpu")
    got = trainer.fit(streamed, config)
    want = reference.fit(streamed, config.replace(dtype="float64"))
    tol = TOLERANCE[dtype]
    assert got.data["streamed"] == {"max_memory": 200_000, "window_rows": 231, "blocks": 72}
    assert max_relative_difference(got.history["loss"], want.history["loss"]) < tol
    assert max_relative_difference(_params(got), _params(want)) < tol


def test_streamed_exact_solve_equals_the_in_memory_one(trainer, streamed):
    in_memory = load_dataset(STREAM_SPEC)
    config = TrainConfig(solver="exact", device="cpu")
    got, want = trainer.fit(streamed, config), trainer.fit(in_memory, config)
    assert max_relative_difference(_params(got), _params(want)) < 1e-12
    design = np.column_stack([in_memory.X, np.ones(in_memory.n_samples)])
    lstsq = np.linalg.lstsq(design, in_memory.y, rcond=None)[0]
    assert max_relative_difference(_params(got), lstsq) < 1e-12
    assert max_relative_difference(list(got.metrics.values()), list(want.metrics.values())) < 1e-12


def test_streamed_resume_continues_bit_for_bit(trainer, streamed, tmp_path):
    config = TrainConfig(optimizer="adam", epochs=4, batch_size=64, device="cpu")
    straight = trainer.fit(streamed, config)
    path = tmp_path / "half.json"
    trainer.fit(streamed, config.replace(epochs=2), callbacks=[Checkpointing(path=path)])
    checkpoint = Checkpoint.read(path)
    resumed = trainer.fit(streamed, config, resume=checkpoint)
    assert resumed.weights == straight.weights and resumed.bias == straight.bias
    assert resumed.history == straight.history
    in_memory = load_dataset(STREAM_SPEC)  # the same values, but another batch order
    with pytest.raises(DlportError, match="resume with the same --max-memory"):
        trainer.fit(in_memory, config, resume=checkpoint)


# The options where frameworks disagree (docs/design.md): each against the reference of the
# framework's convention, and shown to change the run (a no-op would pass parity too).
OPTIONS = {
    "weight-decay-sgd": dict(optimizer="sgd", weight_decay=0.5),
    "weight-decay-momentum": dict(optimizer="momentum", weight_decay=0.5),
    "weight-decay-nesterov": dict(optimizer="nesterov", weight_decay=0.5),
    "weight-decay-adam": dict(optimizer="adam", weight_decay=0.5),
    "adamw": dict(optimizer="adamw", weight_decay=0.5),
    "step-momentum": dict(optimizer="momentum", lr_schedule="step:3:0.5"),
    "exponential-adam": dict(optimizer="adam", lr_schedule="exponential:0.7"),
    "cosine-warmup-nesterov": dict(optimizer="nesterov", lr_schedule="cosine", warmup_epochs=2),
    "warmup-sgd": dict(optimizer="sgd", warmup_epochs=3),
    "huber-sgd": dict(optimizer="sgd", loss="huber:0.5"),
    "huber-adam": dict(optimizer="adam", loss="huber:0.5"),
    "mae-momentum": dict(optimizer="momentum", loss="mae"),
    "adamw-clip-cosine-warmup-validation": dict(
        optimizer="adamw",
        weight_decay=0.5,
        clip_norm=0.5,
        lr_schedule="cosine",
        warmup_epochs=2,
        validation=0.2,
    ),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("option", OPTIONS.values(), ids=OPTIONS.keys())
def test_option_matches_its_conventions_reference(trainer, reference, diabetes, option, dtype):
    config = TrainConfig(epochs=EPOCHS, dtype=dtype, device="cpu", **option)
    got = trainer.fit(diabetes, config)
    want = reference.fit(diabetes, config.replace(dtype="float64"))
    assert got.history.keys() == want.history.keys()
    for curve in got.history:  # the loss, and with --validation the held-out rows' loss
        assert max_relative_difference(got.history[curve], want.history[curve]) < TOLERANCE[dtype]
    assert max_relative_difference(_params(got), _params(want)) < TOLERANCE[dtype]
    plain = {"optimizer": "adam" if option["optimizer"] == "adamw" else option["optimizer"]}
    without = reference.fit(diabetes, TrainConfig(epochs=EPOCHS, device="cpu", **plain))
    assert max_relative_difference(_params(without), _params(want)) > 1e-3


@pytest.mark.parametrize("warmup", [0, 3], ids=["no-warmup", "warmup3"])
@pytest.mark.parametrize("schedule", ["step:2:0.5", "exponential:0.8", "cosine", "constant"])
def test_native_scheduler_gives_the_reference_rate_at_every_step(
    trainer, diabetes, schedule, warmup
):
    """Full batch: one step per epoch, so the rate after each epoch is every step's."""
    config = TrainConfig(
        lr=0.1, batch_size=None, epochs=12, lr_schedule=schedule, warmup_epochs=warmup
    )
    rates = []

    class Rates(Callback):
        def on_epoch_end(self, run, epoch, runner):
            rates.append(runner.learning_rate())

    trainer.fit(diabetes, config.replace(device="cpu"), callbacks=[Rates()])
    exact = Schedule.of(config, steps_per_epoch=1)
    as_held = np.float32 if trainer.conventions.float32_hyperparameters else float
    want = [float(as_held(exact.rate(t))) for t in range(1, config.epochs + 1)]
    assert max(abs(a - b) for a, b in zip(rates[:-1], want[:-1], strict=True)) < 1e-15


def test_exact_solver_refuses_other_losses(trainer, diabetes):
    with pytest.raises(DlportError, match="exact solver minimizes squared error"):
        trainer.fit(diabetes, TrainConfig(solver="exact", loss="huber:1", device="cpu"))


@pytest.mark.parametrize(
    "option",
    [dict(optimizer="adamw", weight_decay=0.1), dict(lr_schedule="cosine", warmup_epochs=1)],
    ids=["adamw", "cosine-warmup"],
)
def test_resume_with_options_continues_bit_for_bit(trainer, diabetes, tmp_path, option):
    config = TrainConfig(epochs=4, device="cpu", **option)
    full = trainer.fit(diabetes, config)
    path = tmp_path / "half.json"
    stop = StopWhen(lambda epoch, w, b: epoch == 2)  # a cosine run keeps its planned epochs
    trainer.fit(diabetes, config, callbacks=[Checkpointing(path=path), stop])
    resumed = trainer.fit(diabetes, config, resume=Checkpoint.read(path))
    assert resumed.weights == full.weights and resumed.bias == full.bias
    assert resumed.history == full.history


def test_validation_and_early_stopping_match_the_reference(trainer, reference, diabetes):
    """The held-out loss by the framework's own forward pass, the same stopping epoch, and the
    best epoch's weights restored."""
    config = TrainConfig(
        optimizer="adam",
        lr=0.1,
        epochs=30,
        validation=0.2,
        early_stopping=3,
        restore_best=True,
        device="cpu",
    )
    got, want = trainer.fit(diabetes, config), reference.fit(diabetes, config)
    assert len(got.history["loss"]) == len(want.history["loss"]) < config.epochs
    tol = TOLERANCE["float64"]
    assert max_relative_difference(got.history["val_loss"], want.history["val_loss"]) < tol
    assert max_relative_difference(_params(got), _params(want)) < tol
    assert got.data["validation_rows"] == round(0.2 * diabetes.n_samples)
    assert max_relative_difference(got.metrics["val_mse"], want.metrics["val_mse"]) < tol
    last = reference.fit(diabetes, config.replace(restore_best=False))
    assert max_relative_difference(_params(last), _params(want)) > 1e-6  # it restored


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_no_intercept_exact_is_the_through_the_origin_least_squares(trainer, diabetes, dtype):
    config = TrainConfig(solver="exact", fit_intercept=False, dtype=dtype, device="cpu")
    got = trainer.fit(diabetes, config)
    expected = np.linalg.lstsq(diabetes.X, diabetes.y, rcond=None)[0]
    assert got.bias == 0.0
    assert max_relative_difference(got.weights, expected) < TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_no_intercept_trajectory_matches_reference(trainer, reference, diabetes, optimizer, dtype):
    config = TrainConfig(optimizer=optimizer, fit_intercept=False, epochs=EPOCHS, dtype=dtype)
    got = trainer.fit(diabetes, config.replace(device="cpu"))
    want = reference.fit(diabetes, config.replace(dtype="float64", device="cpu"))
    assert got.bias == 0.0 and want.bias == 0.0
    assert max_relative_difference(got.history["loss"], want.history["loss"]) < TOLERANCE[dtype]
    assert max_relative_difference(_params(got), _params(want)) < TOLERANCE[dtype]
