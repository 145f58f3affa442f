"""Checkpoints from anywhere: bounded reads, one schema checked at read, an optimizer state that
must fit the run it resumes, a resume that keeps its settings, O(1) saving per epoch, and a
Ctrl-C message that is true."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from test_cli import assert_one_line_error, dlport

from dlport.common import checkpoint as ckpt
from dlport.common.checkpoint import Checkpoint, Checkpointing
from dlport.common.config import TrainConfig
from dlport.common.errors import DlportError, Interrupted
from dlport.frameworks.numpy.trainer import NumpyTrainer, ReferenceRunner

CONFIG = TrainConfig(optimizer="adam", epochs=3, device="cpu")


@pytest.fixture()
def saved(tmp_path, diabetes):
    path = tmp_path / "run.ckpt.json"
    NumpyTrainer().fit(diabetes, CONFIG, callbacks=[Checkpointing(path=path)])
    return path


def resave(path, change, out=None):
    """A checkpoint with a valid checksum whose payload ``change`` edited: what anyone can make."""
    payload = copy.deepcopy(Checkpoint.read(path).payload)
    change(payload)
    Checkpoint(payload).write(out or path)
    return out or path


# -- A: reads are bounded ------------------------------------------------------------------------
def test_a_file_over_the_size_cap_is_refused_unread(tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as fh:
        fh.truncate(ckpt.MAX_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(DlportError, match=r"over 64 MiB, more than a dlport checkpoint holds"):
        Checkpoint.read(path)


@pytest.mark.parametrize("command", ["predict", "resume"])
def test_a_device_file_is_refused_at_once(command):
    args = ["--checkpoint", "/dev/zero", "--data", "diabetes"]
    if command == "resume":
        args = ["--resume", "/dev/zero", "--data", "diabetes"]
    run = subprocess.run(
        [sys.executable, "-m", "dlport", "predict" if command == "predict" else "train", *args],
        capture_output=True,
        text=True,
        timeout=60,  # the old reader never returned
    )
    assert_one_line_error(run, 2, "/dev/zero is not a regular file")


def test_deep_nesting_is_refused_in_one_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(DlportError, match="nested too deeply"):
        Checkpoint.read(path)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        ({"__array__": [0.0] * 11, "shape": [11], "dtype": "S2000000000"}, "dtype 'S2000000000'"),
        ({"__array__": [0.0] * 11, "shape": [11], "dtype": "object"}, "dtype 'object'"),
        ({"__array__": [0.0] * 3, "shape": [1000000000, 100], "dtype": "float64"}, "3 values"),
        ({"__array__": ["1.5"] * 11, "shape": [11], "dtype": "float64"}, "numbers"),
        ({"__array__": [1e300] * 11, "shape": [11], "dtype": "float32"}, "float32 cannot hold"),
        ({"__array__": [0.5] * 11, "shape": [11], "dtype": "int64"}, "int64 cannot hold"),
        ({"__array__": [0.0] * 11, "shape": [11], "dtype": "float64", "x": 1}, "keys"),
    ],
    ids=[
        "bytes-dtype",
        "object-dtype",
        "shape-vs-length",
        "strings",
        "overflow",
        "fraction",
        "key",
    ],
)
def test_optimizer_arrays_are_checked_before_any_allocation(saved, array, message):
    resave(saved, lambda p: p["optimizer"].update(first=array))
    with pytest.raises(DlportError, match=f"malformed checkpoint .*{message}"):
        Checkpoint.read(saved)


# -- B, C: one schema, checked at read, whatever the checksum says -----------------------------
def _drop(*keys):
    def change(payload):
        node = payload
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return change


def _set(value, *keys):
    def change(payload):
        node = payload
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return change


MALFORMED = {
    "no-config": (_drop("config"), "config is missing"),
    "no-history": (_drop("history"), "history is missing"),
    "no-feature-names": (_drop("data", "feature_names"), "data.feature_names is missing"),
    "negative-epoch": (_set(-5, "epoch"), "epoch must be a non-negative integer, got -5"),
    "fractional-epoch": (_set(2.5, "epoch"), "epoch must be a non-negative integer, got 2.5"),
    "bool-epoch": (_set(True, "epoch"), "epoch must be a non-negative integer, got True"),
    "epoch-vs-history": (_set(2, "epoch"), "3 losses in history but epoch 2"),
    "epoch-past-config": (
        lambda p: p.update(epoch=4, history={"loss": [1.0] * 4}),
        "epoch 4 is past config.epochs 3",
    ),
    "framework-list": (_set(["numpy"], "framework"), "framework must be one of"),
    "framework-unknown": (_set("caffe", "framework"), "framework must be one of"),
    "names-length": (_set(["age"], "data", "feature_names"), "data.feature_names must be 10"),
    "bool-n-features": (_set(True, "data", "n_features"), "data.n_features must be a positive"),
    "bias-string": (_set("0.5", "model", "bias"), "model.bias must be a number"),
    "weights-string": (_set("1,2,3", "params", "weights"), "params.weights must be 10 numbers"),
    "weights-length": (_set([0.0] * 9, "params", "weights"), "params.weights must be 10 numbers"),
    "config-bool-seed": (_set(True, "config", "seed"), "config.seed must be an integer"),
    "config-string-lr": (_set("0.01", "config", "lr"), "config.lr must be a number"),
    "config-bad-value": (_set(-1.0, "config", "lr"), "config: lr must be a positive number"),
    "config-unknown-key": (_set(1, "config", "warmup"), "config has unknown keys \\['warmup'\\]"),
    "loss-string": (_set(["a", "b", "c"], "history", "loss"), "history.loss must be numbers"),
    "optimizer-string": (_set("adam", "optimizer"), "optimizer must be an object"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_checksum_valid_but_malformed_checkpoints_are_refused(saved, case):
    change, message = MALFORMED[case]
    resave(saved, change)
    with pytest.raises(DlportError, match=f"malformed checkpoint \\(.*{message}"):
        Checkpoint.read(saved)


@pytest.mark.parametrize("case", ["no-config", "bias-string", "fractional-epoch"])
@pytest.mark.parametrize("command", ["predict", "export", "resume"])
def test_malformed_checkpoints_are_one_line_for_every_command(tmp_path, saved, case, command):
    resave(saved, MALFORMED[case][0])
    out = tmp_path / "out.pt"
    args = {
        "predict": ["predict", "--checkpoint", str(saved), "--data", "diabetes"],
        "export": ["export", "--checkpoint", str(saved), "--framework", "torch", "--out", str(out)],
        "resume": ["train", "--resume", str(saved), "--data", "diabetes"],
    }[command]
    assert_one_line_error(dlport(*args), 2, "malformed checkpoint")
    assert not out.exists()


def test_the_exact_solver_checkpoint_passes_the_schema(tmp_path, diabetes):
    path = tmp_path / "exact.json"
    result = NumpyTrainer().fit(
        diabetes, TrainConfig(solver="exact"), callbacks=[Checkpointing(path=path)]
    )
    checkpoint = Checkpoint.read(path)
    assert checkpoint.epoch == 0 and checkpoint.model[0].tolist() == result.weights


# -- C, D: on resume, the optimizer state must be exactly what this framework's runner keeps -----
def _first_array(state, path=()):
    """The key path of the first array in an optimizer state, in key order."""
    if isinstance(state, dict) and "__array__" in state:
        return path
    items = state.items() if isinstance(state, dict) else enumerate(state)
    for key, value in items:
        if isinstance(value, (dict, list)):
            found = _first_array(value, (*path, key))
            if found is not None:
                return found
    return None


def _at(state, path):
    for key in path:
        state = state[key]
    return state


def _wrong_shape(optimizer):
    array = _at(optimizer, _first_array(optimizer))
    array.update(__array__=array["__array__"] + [0.0], shape=[len(array["__array__"]) + 1])


def _extra_slot(optimizer):
    array = copy.deepcopy(_at(optimizer, _first_array(optimizer)))
    *parent, _ = _first_array(optimizer)
    node = _at(optimizer, parent)
    if isinstance(node, list):
        node.append(array)
    else:
        node["99"] = array


def _other_dtype(optimizer):
    array = _at(optimizer, _first_array(optimizer))
    array["dtype"] = "int64" if array["dtype"].startswith("float") else "float64"
    array["__array__"] = [0.0] * len(array["__array__"])


STATE_DAMAGE = {
    "empty": (lambda o: o.clear(), "missing"),
    "extra-slot": (_extra_slot, "unexpected"),
    "wrong-shape": (_wrong_shape, "shape"),
    "other-dtype": (_other_dtype, "dtype"),
}


@pytest.mark.parametrize("damage", list(STATE_DAMAGE))
def test_resume_refuses_an_optimizer_state_this_run_does_not_keep(
    tmp_path, trainer, diabetes, damage
):
    path = tmp_path / "run.json"
    trainer.fit(diabetes, CONFIG.replace(epochs=1), callbacks=[Checkpointing(path=path)])
    change, message = STATE_DAMAGE[damage]
    resave(path, lambda p: change(p["optimizer"]))
    with pytest.raises(DlportError, match=f"optimizer state does not fit .*{message}"):
        trainer.fit(diabetes, CONFIG, resume=Checkpoint.read(path))


def test_resume_refuses_a_bad_optimizer_state_in_one_line(saved):
    resave(saved, lambda p: p.update(optimizer={}))
    run = dlport("train", "--resume", str(saved), "--data", "diabetes", "--epochs", "4")
    assert_one_line_error(run, 2, "optimizer state does not fit numpy adam: optimizer.first is")


# -- F: a resume keeps the run's settings --------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "0.5"], "--lr 0.5 differs from the checkpoint's 0.01; resume keeps"),
        (["--batch-size", "full"], "--batch-size full differs from the checkpoint's 32"),
        (["--no-standardize"], "--no-standardize differs from the checkpoint's standardized"),
        (["--optimizer", "sgd", "--seed", "3"], "--optimizer sgd differs from the checkpoint's"),
    ],
    ids=["lr", "batch-size", "standardize", "two"],
)
def test_resume_refuses_changed_training_flags_by_name(saved, flags, message):
    run = dlport("train", "--resume", str(saved), "--data", "diabetes", *flags)
    assert_one_line_error(run, 2, message)
    assert "(only --epochs, --device and --tf32 may change)" in run.stderr


def test_a_checkpoint_from_before_tf32_resumes_and_tf32_may_change(saved):
    resave(saved, lambda p: p["config"].pop("tf32"))  # written before the setting existed
    run = dlport("train", "--resume", str(saved), "--data", "diabetes", "--tf32", "--epochs", "4")
    assert run.returncode == 0, run.stderr


def test_a_checkpoint_from_before_clip_norm_reads_as_unclipped(saved):
    resave(saved, lambda p: p["config"].pop("clip_norm"))
    assert TrainConfig.from_dict(Checkpoint.read(saved).payload["config"]).clip_norm is None


@pytest.mark.parametrize("value", ["0.5", True, -1.0], ids=["text", "bool", "negative"])
def test_a_checkpoint_with_a_bad_clip_norm_is_refused_by_name(saved, value):
    resave(saved, lambda p: p["config"].update(clip_norm=value))
    with pytest.raises(DlportError, match=r"config\.clip_norm|clip_norm must be"):
        Checkpoint.read(saved)


def test_a_clipped_run_resumes_bit_for_bit(tmp_path, diabetes):
    config = CONFIG.replace(clip_norm=0.5, epochs=4)
    whole = NumpyTrainer().fit(diabetes, config)
    path = tmp_path / "c.json"
    NumpyTrainer().fit(diabetes, config.replace(epochs=2), callbacks=[Checkpointing(path=path)])
    resumed = NumpyTrainer().fit(diabetes, config, resume=Checkpoint.read(path))
    assert (resumed.weights, resumed.history) == (whole.weights, whole.history)


def test_resume_accepts_flags_equal_to_the_saved_ones_and_a_device(tmp_path, saved, diabetes):
    full = NumpyTrainer().fit(diabetes, CONFIG.replace(epochs=5))
    args = ["--lr", "0.01", "--optimizer", "adam", "--batch-size", "32", "--device", "auto"]
    run = dlport(
        "train", "--resume", str(saved), "--data", "diabetes", "--epochs", "5", *args, "--json", "-"
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["weights"] == full.weights


def test_train_help_still_shows_every_default():
    help_text = " ".join(dlport("train", "--help").stdout.split())  # as read, unwrapped
    for flag in ("--lr LR", "--momentum", "--epochs", "--batch-size", "--seed", "--device"):
        assert flag in help_text
    for default in ("default 0.01", "default 50", "default 32", "default auto", "default sgd"):
        assert default in help_text


# -- G: saving per epoch costs the same at epoch 10 and at epoch 1,000,000 ---------------------
def test_epoch_done_does_not_copy_the_history(diabetes):
    saver, run = _started(Checkpointing(interrupt_path=None), diabetes)
    runner = _runner(diabetes)
    run.history[:] = [0.5] * 2_000_000  # a copy would take 16 MB
    tracemalloc.start()
    try:
        for epoch in range(len(run.history) - 3, len(run.history)):
            saver.on_epoch_end(run, epoch, runner)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"epoch_done allocated {peak} bytes: it copies the history"


def test_the_written_history_is_the_one_at_the_snapshot(tmp_path, diabetes):
    path = tmp_path / "c.json"
    saver, run = _started(Checkpointing(path=path), diabetes)
    run.history[:] = [0.3, 0.2]
    saver.on_epoch_end(run, 2, _runner(diabetes))
    run.history.append(0.1)  # the next epoch's loss, then Ctrl-C before its snapshot
    with pytest.raises(Interrupted, match="after epoch 2"):
        saver.on_interrupt(run)
    assert Checkpoint.read(path).payload["history"]["loss"] == [0.3, 0.2]


def _started(checkpointing, data):
    """The callback as fit starts it, and the run it sees."""
    from dlport.common.callbacks import TrainingRun
    from dlport.common.standardize import Standardizer

    run = TrainingRun(NumpyTrainer(), CONFIG, data, Standardizer.fit(data.X, data.y), None)
    checkpointing.on_train_begin(run)
    return checkpointing, run


def _runner(data):
    w0 = np.zeros(data.n_features)
    return ReferenceRunner(data.X, data.y, w0, 0.0, CONFIG, NumpyTrainer().conventions)


# -- H: a Ctrl-C after something was saved says where it is ---------------------------------------
def interrupt_at(monkeypatch, call: int):
    """Ctrl-C during the ``call``-th epoch from now (1-based)."""
    calls = []
    run_epoch = ReferenceRunner.run_epoch

    def interrupted(self, order):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return run_epoch(self, order)

    monkeypatch.setattr(ReferenceRunner, "run_epoch", interrupted)


def _fit(*args, **kwargs):
    """``fit``, where an escaping Ctrl-C fails the test (instead of stopping pytest)."""
    try:
        return NumpyTrainer().fit(*args, **kwargs)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped: main() would say that nothing was saved")


def test_ctrl_c_in_the_first_resumed_epoch_saves_the_resumed_state(
    tmp_path, saved, diabetes, monkeypatch
):
    out = tmp_path / "next.json"
    interrupt_at(monkeypatch, 1)
    with pytest.raises(Interrupted, match=f"after epoch 3; checkpoint written to {out}"):
        _fit(
            diabetes,
            CONFIG.replace(epochs=5),
            callbacks=[Checkpointing(path=out)],
            resume=Checkpoint.read(saved),
        )
    got, want = Checkpoint.read(out).payload, Checkpoint.read(saved).payload
    assert got == dict(want, config=CONFIG.replace(epochs=5).to_dict())


def test_ctrl_c_during_the_final_write_still_saves_and_says_so(tmp_path, diabetes, monkeypatch):
    path = tmp_path / "end.json"
    write, calls = Checkpoint.write, []

    def write_once_interrupted(self, target):
        calls.append(target)
        if len(calls) == 1:
            raise KeyboardInterrupt
        write(self, target)

    monkeypatch.setattr(Checkpoint, "write", write_once_interrupted)
    with pytest.raises(Interrupted, match=f"after epoch 3; checkpoint written to {path}"):
        _fit(diabetes, CONFIG, callbacks=[Checkpointing(path=path)])
    assert Checkpoint.read(path).epoch == 3


def test_ctrl_c_before_any_save_is_a_plain_keyboard_interrupt(tmp_path, diabetes, monkeypatch):
    interrupt_at(monkeypatch, 1)  # main() then says that nothing was saved
    with pytest.raises(KeyboardInterrupt):
        NumpyTrainer().fit(diabetes, CONFIG, callbacks=[Checkpointing(path=tmp_path / "x")])
    assert not os.path.exists(tmp_path / "x")
