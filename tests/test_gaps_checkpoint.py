"""Gaps the mutation run found in dlport.common.checkpoint (tox -e mutation): the interrupt path
without --checkpoint, the exact solver, a resume at the final epoch and the schema version."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
import warnings

import numpy as np
import pytest
from test_cli import assert_one_line_error, dlport
from test_gaps_data import refused
from test_hardening_checkpoint import interrupt_at

from dlport.common import checkpoint as ckpt
from dlport.common.checkpoint import FORMAT, SCHEMA_VERSION, Checkpoint, Checkpointing
from dlport.common.config import TrainConfig
from dlport.common.errors import DlportError, Interrupted
from dlport.frameworks.numpy.trainer import NumpyTrainer

CONFIG = TrainConfig(optimizer="momentum", epochs=4, device="cpu")


def test_ctrl_c_without_checkpoint_saves_to_the_interrupt_path_only(
    tmp_path, diabetes, monkeypatch
):
    # dlport train without --checkpoint: nothing is written per epoch or at the end...
    target = tmp_path / "dlport-interrupted-numpy.ckpt.json"
    plan = Checkpointing(interrupt_path=target)
    whole = NumpyTrainer().fit(diabetes, CONFIG, callbacks=[plan])
    assert not target.exists()
    # ...but Ctrl-C saves the last complete epoch there, and says so.
    interrupt_at(monkeypatch, 3)
    with pytest.raises(Interrupted, match=f"after epoch 2; checkpoint written to {target}; "):
        NumpyTrainer().fit(diabetes, CONFIG, callbacks=[plan])
    saved = Checkpoint.read(target)
    assert saved.epoch == 2 and saved.payload["rng"] == {
        "batch_order": "epoch_order(n, seed, epoch)",
        "seed": 0,
        "next_epoch": 2,
    }
    assert saved.payload["history"]["loss"] == whole.history["loss"][:2]
    monkeypatch.undo()
    resumed = NumpyTrainer().fit(diabetes, CONFIG, resume=saved)
    assert resumed.weights == whole.weights and resumed.history == whole.history


def test_ctrl_c_in_the_first_epoch_saves_nothing(tmp_path, diabetes, monkeypatch):
    target = tmp_path / "interrupted.json"
    interrupt_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        NumpyTrainer().fit(diabetes, CONFIG, callbacks=[Checkpointing(interrupt_path=target)])
    assert not target.exists()


def test_the_exact_solver_checkpoint_holds_its_model_and_cannot_be_resumed(tmp_path, diabetes):
    path = tmp_path / "exact.json"
    config = TrainConfig(solver="exact")
    result = NumpyTrainer().fit(diabetes, config, callbacks=[Checkpointing(path=path)])
    saved = Checkpoint.read(path)
    weights, bias = saved.model
    assert weights.tolist() == result.weights and bias == result.bias
    assert saved.payload["history"] == {"loss": []} and saved.optimizer_state == {}
    assert saved.payload["config"] == config.to_dict()
    with pytest.raises(DlportError, match="the exact solver has nothing to resume"):
        NumpyTrainer().fit(diabetes, config, resume=saved)


@pytest.fixture()
def finished(tmp_path, diabetes):
    path = tmp_path / "done.json"
    result = NumpyTrainer().fit(diabetes, CONFIG, callbacks=[Checkpointing(path=path)])
    return Checkpoint.read(path), result


def test_resume_at_the_final_epoch_trains_nothing_and_returns_the_model(diabetes, finished):
    saved, result = finished
    assert saved.epoch == CONFIG.epochs
    again = NumpyTrainer().fit(diabetes, CONFIG, resume=saved)
    assert again.weights == result.weights and again.bias == result.bias
    assert again.history == result.history and again.timing["steps"] == 0
    # Going further continues from there, as one longer run does.
    longer = NumpyTrainer().fit(diabetes, CONFIG.replace(epochs=6))
    further = NumpyTrainer().fit(diabetes, CONFIG.replace(epochs=6), resume=saved)
    assert further.weights == longer.weights and further.history == longer.history


def test_resume_past_the_checkpoint_is_refused(diabetes, finished):
    saved, _ = finished
    with pytest.raises(DlportError, match="the checkpoint is at epoch 4, past --epochs 3"):
        NumpyTrainer().fit(diabetes, CONFIG.replace(epochs=3), resume=saved)


def test_the_train_units_and_original_units_are_both_kept(diabetes, finished):
    saved, result = finished
    w, b = saved.train_params
    scale = result.standardization
    np.testing.assert_allclose(
        scale["y_scale"] * w / np.array(scale["x_scale"]), result.weights, rtol=1e-12
    )
    assert isinstance(b, float) and saved.n_features == diabetes.n_features == len(w)


def test_the_file_names_its_format_and_schema_version(tmp_path, finished):
    saved, _ = finished
    path = tmp_path / "v.json"
    saved.write(path)
    document = json.loads(path.read_text())
    assert document["format"] == FORMAT == "dlport-checkpoint"
    assert document["schema_version"] == SCHEMA_VERSION == 1
    assert Checkpoint.read(path).payload == saved.payload


@pytest.mark.parametrize("version", ["1", 1.0, None, 2], ids=["text", "float", "none", "newer"])
def test_a_schema_version_this_dlport_cannot_read_is_refused(tmp_path, finished, version):
    saved, _ = finished
    path = tmp_path / "v.json"
    saved.write(path)
    document = json.loads(path.read_text())
    document["schema_version"] = version
    path.write_text(json.dumps(document))
    with pytest.raises(DlportError, match=f"has checkpoint schema {version!r}, newer than this"):
        Checkpoint.read(path)


def test_resuming_an_exact_run_is_one_line_exit_2(tmp_path):
    # It used to re-solve silently, on any data: the check never ran for the exact solver.
    path = tmp_path / "exact.json"
    assert (
        dlport(
            "train", "--solver", "exact", "--data", "diabetes", "--checkpoint", str(path)
        ).returncode
        == 0
    )
    run = dlport("train", "--resume", str(path), "--data", "synthetic:n=50,d=10")
    assert_one_line_error(run, 2, "the exact solver has nothing to resume")


# -- an optimizer state must fit the run exactly: every mismatch named ----------------------------
F64, I64 = np.zeros(2), np.zeros(3, dtype=np.int64)
EXPECTED = {"slots": [F64, {"m": F64}], "step": 0, "lr": 0.5}


def fitting(**changes):
    state = {"slots": [F64.copy(), {"m": F64.copy()}], "step": 4, "lr": 0.25}
    return {**state, **changes}


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ([], "optimizer must be an object, got a list of 0"),
        ({"step": 1, "lr": 0.5}, "optimizer.slots is missing"),
        (fitting(extra=1), "optimizer.extra is unexpected"),
        (fitting(slots={"m": F64}), "optimizer.slots must be a list, got an object of 1"),
        (fitting(slots=[F64]), "optimizer.slots[1] is missing"),
        (fitting(slots=[F64, {"m": F64}, F64]), "optimizer.slots[2] is unexpected"),
        (fitting(slots=[1.5, {"m": F64}]), "optimizer.slots[0] must be an array, got 1.5"),
        (fitting(slots=[I64[:2], {"m": F64}]), "optimizer.slots[0] has dtype int64, not float64"),
        (fitting(slots=[F64, {"m": np.zeros(3)}]), "optimizer.slots[1].m has shape [3], not [2]"),
        (fitting(step=-1), "optimizer.step must be a count, got -1"),
        (fitting(step=True), "optimizer.step must be a count, got True"),
        (fitting(lr="0.5"), "optimizer.lr must be a number, got '0.5'"),
        (fitting(lr="x" * 50), f"optimizer.lr must be a number, got {repr('x' * 50)[:37]}..."),
    ],
    ids=[
        "not-an-object",
        "missing-key",
        "extra-key",
        "not-a-list",
        "short-list",
        "long-list",
        "not-an-array",
        "other-dtype",
        "other-shape",
        "negative-step",
        "bool-step",
        "string-number",
        "long-string",
    ],
)
def test_an_optimizer_state_that_does_not_fit_is_named(state, problem):
    assert refused(ckpt.check_optimizer_state, state, EXPECTED, "numpy adam") == (
        f"the checkpoint's optimizer state does not fit numpy adam: {problem}; it was not "
        "written by this dlport for this run: train again without --resume"
    )


def test_an_optimizer_state_that_fits_passes():
    ckpt.check_optimizer_state(fitting(), EXPECTED, "numpy adam")
    ckpt.check_optimizer_state(fitting(step=0, lr=1), EXPECTED, "numpy adam")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ([1, 2], "a list of 2"),
        ({}, "an object of 0"),
        ("y" * 40, repr("y" * 40)[:37] + "..."),
        ("y" * 38, repr("y" * 38)),
        ("y" * 39, repr("y" * 39)[:37] + "..."),
        (None, "None"),
    ],
    ids=["list", "object", "long", "40-chars", "41-chars", "none"],
)
def test_values_are_shown_short(value, shown):
    assert ckpt._shown(value) == shown


def test_resume_refusals_are_exact(diabetes, finished):
    saved, _ = finished

    def refusal(config=CONFIG, data=diabetes):
        return refused(NumpyTrainer().fit, data, config, resume=saved)

    assert refusal(data=dataclasses.replace(diabetes, y=diabetes.y + 1)) == (
        "the checkpoint was trained on other data; resume with the same --data"
    )
    assert refusal(CONFIG.replace(lr=0.5, seed=3)) == (
        "resume must keep the checkpoint's settings; these differ: ['lr', 'seed']"
    )
    assert refusal(CONFIG.replace(solver="exact")) == (
        "the exact solver has nothing to resume; run it again instead"
    )
    assert refused(ckpt.check_resume_framework, saved, "torch") == (
        "the checkpoint was written by numpy; resume it with --framework numpy "
        "(any framework can predict from it)"
    )


def test_resume_may_change_the_device_and_the_epochs(diabetes, finished):
    saved, result = finished
    again = NumpyTrainer().fit(diabetes, CONFIG.replace(device="auto"), resume=saved)
    assert again.weights == result.weights and again.config["device"] == "auto"


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_a_float32_run_resumes_bit_for_bit(tmp_path, diabetes, optimizer):
    # The saved slots come back in the run's dtype, not as float64.
    config = CONFIG.replace(optimizer=optimizer, dtype="float32", epochs=2)
    path = tmp_path / "half.json"
    NumpyTrainer().fit(diabetes, config, callbacks=[Checkpointing(path=path)])
    resumed = NumpyTrainer().fit(diabetes, config.replace(epochs=4), resume=Checkpoint.read(path))
    whole = NumpyTrainer().fit(diabetes, config.replace(epochs=4))
    assert resumed.weights == whole.weights and resumed.history == whole.history


def array(values, shape, dtype="float64"):
    return {"m": {"__array__": values, "shape": shape, "dtype": dtype}}


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        (
            array([1.0], [1], "float16"),
            "optimizer.m has dtype 'float16'; a checkpoint holds float32, float64, int32, int64",
        ),
        (
            array([1.0], [-1]),
            "optimizer.m.shape must be a list of non-negative integers, got a list of 1",
        ),
        (
            array([1.0], [1.5]),
            "optimizer.m.shape must be a list of non-negative integers, got a list of 1",
        ),
        (array([1.0], [1] * 9), "optimizer.m.shape must be a list of non-negative integers, got"),
        (array(["1"], [1]), "optimizer.m must be numbers, got a list of 1"),
        (array([1.0, 2.0], [3]), "optimizer.m has 2 values for shape [3]"),
        (array([0.1], [1], "float32"), "optimizer.m: float32 cannot hold its values"),
        (array([1e300], [1], "float32"), "optimizer.m: float32 cannot hold its values"),
        (array([1e300], [1], "int32"), "optimizer.m: int32 cannot hold its values"),
        ({"m": True}, "optimizer.m must be a number, array, list or object, got True"),
    ],
    ids=[
        "dtype",
        "negative",
        "fraction",
        "9-dims",
        "strings",
        "count",
        "float32",
        "float32-overflow",
        "int32-overflow",
        "bool",
    ],
)
def test_a_bad_saved_array_is_named_exactly(state, problem):
    with warnings.catch_warnings(), pytest.raises(ValueError) as caught:
        warnings.simplefilter("error")  # an overflowing cast is refused, not warned about
        ckpt.decode_state(state)
    assert str(caught.value).startswith(problem)


def test_a_saved_array_of_eight_dimensions_loads():
    (loaded,) = ckpt.decode_state(array([2.0], [1] * 8)).values()
    assert loaded.shape == (1,) * 8 and loaded.dtype == np.float64 and loaded.sum() == 2.0
    (square,) = ckpt.decode_state(array([1, 2, 3, 4], [2, 2], "int64")).values()
    assert square.tolist() == [[1, 2], [3, 4]] and square.dtype == np.int64


def nested(depth: int, wrap=lambda value: {"a": value}):
    """A number under ``depth`` levels of objects {"a": ...} (or of what ``wrap`` makes)."""
    value = 1.5
    for _ in range(depth):
        value = wrap(value)
    return value


@pytest.mark.parametrize(
    ("wrap", "where"),
    [(lambda value: {"a": value}, ".a"), (lambda value: [value], "[0]")],
    ids=["objects", "lists"],
)
def test_a_saved_state_nests_at_most_eight_levels(wrap, where):
    assert ckpt.decode_state(nested(8, wrap)) == nested(8, wrap)
    with pytest.raises(ValueError) as caught:
        ckpt.decode_state(nested(9, wrap))
    assert str(caught.value) == "optimizer" + where * 9 + " is nested too deeply"
    assert ckpt.decode_state({"slots": [[1.0, 2], {"m": 3}]}) == {"slots": [[1.0, 2], {"m": 3}]}


def test_the_checksum_is_of_canonical_json():
    # Part of the file format: a checkpoint must verify under any later dlport.
    payload = {"b": [1.5, "x"], "a": {"d": 1, "c": None}}
    canonical = '{"a":{"c":null,"d":1},"b":[1.5,"x"]}'
    assert ckpt._checksum(payload) == hashlib.sha256(canonical.encode()).hexdigest()
    with pytest.raises(ValueError, match="not JSON compliant"):
        ckpt._checksum({"a": float("nan")})


def test_the_data_fingerprint_is_of_the_float64_values():
    X, y = np.arange(6).reshape(3, 2), np.array([1, 2, 3])
    assert ckpt.data_fingerprint(X, y) == ckpt.data_fingerprint(X.astype(float), y.astype(float))
    assert ckpt.data_fingerprint(X, y) == ckpt.data_fingerprint(np.asfortranarray(X), y)
    assert ckpt.data_fingerprint(X, y) != ckpt.data_fingerprint(X, y[::-1])


def test_optimizer_state_lists_are_encoded_item_by_item():
    encoded = ckpt.encode_state({"slots": [np.array([1.0], dtype=np.float32), np.int64(2)]})
    assert encoded == {"slots": [{"__array__": [1.0], "shape": [1], "dtype": "float32"}, 2]}


def _edit(payload, path, value):
    *parents, last = path
    for key in parents:
        payload = payload[key]
    payload[last] = value


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (("data",), [], "data must be an object, got a list of 0"),
        (("data", "feature_names"), [1] * 10, "data.feature_names must be 10 strings, got a list"),
        (("config",), [], "config must be an object, got a list of 0"),
        (("config", "lr"), None, "config.lr must be a number, got None"),
        (("config", "seed"), "0", "config.seed must be an integer, got '0'"),
        (("config", "momentum"), 1.5, "config: momentum must be in [0, 1), got 1.5"),
        (("epoch",), -1, "epoch must be a non-negative integer, got -1"),
        (("optimizer",), [], "optimizer must be an object, got a list of 0"),
        (("optimizer", "step"), "x", "optimizer.step must be a number, array, list or object"),
        (("optimizer", "first"), [1.0, "x"], "optimizer.first[1] must be a number, array, list"),
        (("framework",), "caffe", "framework must be one of numpy, torch, "),
    ],
    ids=[
        "data",
        "names",
        "config",
        "config-none",
        "config-type",
        "config-value",
        "epoch",
        "optimizer",
        "optimizer-step",
        "optimizer-list",
        "framework",
    ],
)
def test_a_malformed_checkpoint_names_the_field_exactly(tmp_path, finished, path, value, problem):
    saved, _ = finished
    payload = json.loads(json.dumps(saved.payload))
    _edit(payload, path, value)
    out = tmp_path / "edited.json"
    Checkpoint(payload).write(out)
    message = refused(Checkpoint.read, out)
    prefix = f"{out} is a malformed checkpoint ({problem}"
    assert message.startswith(prefix), message
    assert message.endswith("); re-create it with dlport train --checkpoint")


def test_a_missing_config_key_is_named(tmp_path, finished):
    saved, _ = finished
    payload = json.loads(json.dumps(saved.payload))
    del payload["config"]["lr"]
    out = tmp_path / "edited.json"
    Checkpoint(payload).write(out)
    assert refused(Checkpoint.read, out) == (
        f"{out} is a malformed checkpoint (config.lr is missing); "
        "re-create it with dlport train --checkpoint"
    )


def test_a_full_batch_checkpoint_reads(tmp_path, diabetes):
    path = tmp_path / "full.json"
    config = CONFIG.replace(batch_size=None, epochs=2)
    NumpyTrainer().fit(diabetes, config, callbacks=[Checkpointing(path=path)])
    assert Checkpoint.read(path).payload["config"]["batch_size"] is None


def test_reading_refusals_are_exact(tmp_path):
    def refusal(path):
        return refused(Checkpoint.read, path)

    missing = tmp_path / "none.json"
    assert refusal(missing) == f"checkpoint not found: {missing}"
    assert refusal(tmp_path) == f"{tmp_path} is not a regular file; give a checkpoint file"
    (tmp_path / "file").write_text("x")
    under_a_file = tmp_path / "file" / "run.json"
    assert refusal(under_a_file) == f"cannot read checkpoint {under_a_file} (Not a directory)"
    nan = tmp_path / "nan.json"
    nan.write_text('{"format": "dlport-checkpoint", "payload": {"bias": NaN}}')
    assert refusal(nan) == (
        f"{nan} is not a dlport checkpoint (truncated or corrupted); "
        "re-create it with dlport train --checkpoint"
    )


def test_the_size_cap_is_inclusive(tmp_path, finished):
    saved, _ = finished
    at_cap = tmp_path / "at-cap.json"
    saved.write(at_cap)
    body = at_cap.read_text().rstrip()  # ends with the closing brace: cutting a byte breaks it
    at_cap.write_text(body[:-1] + " " * (ckpt.MAX_BYTES - len(body)) + "}")
    assert at_cap.stat().st_size == ckpt.MAX_BYTES
    assert Checkpoint.read(at_cap).payload == saved.payload
    over = tmp_path / "over.json"
    over.write_text(body[:-1] + " " * (ckpt.MAX_BYTES + 1 - len(body)) + "}")
    assert refused(Checkpoint.read, over) == (
        f"{over} is over 64 MiB, more than a dlport checkpoint holds; "
        "give the file that dlport train --checkpoint wrote"
    )


def test_a_checkpoint_never_holds_nan(tmp_path, finished):
    saved, _ = finished
    payload = json.loads(json.dumps(saved.payload))
    payload["model"]["bias"] = float("nan")
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        Checkpoint(payload).write(tmp_path / "nan.json")


def test_a_file_that_grows_past_the_cap_while_read_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "growing.json"
    with open(path, "wb") as fh:
        fh.truncate(ckpt.MAX_BYTES + 1)
    small = os.stat_result((stat.S_IFREG | 0o644, 0, 0, 1, 0, 0, 100, 0, 0, 0))
    monkeypatch.setattr(ckpt.Path, "stat", lambda self, **kwargs: small)  # as it was at stat()
    assert refused(Checkpoint.read, path) == (
        f"{path} is over 64 MiB, more than a dlport checkpoint holds; "
        "give the file that dlport train --checkpoint wrote"
    )


def test_a_number_past_float64_is_refused_as_corruption(tmp_path, diabetes):
    """1e999 parses to inf; the writer never emits it, and the checksum could not hold it."""
    path = tmp_path / "c.json"
    NumpyTrainer().fit(diabetes, CONFIG, callbacks=[Checkpointing(path=path)])
    document = json.loads(path.read_text())
    first = json.dumps(document["payload"]["history"]["loss"][0])
    path.write_text(path.read_text().replace(first, "1e999", 1))
    assert refused(Checkpoint.read, path) == (
        f"{path} is not a dlport checkpoint (truncated or corrupted); "
        "re-create it with dlport train --checkpoint"
    )
