"""What a checkpoint of a validated, early-stopping run holds and what reading one refuses: the
validation losses (one per epoch, under history.val_loss), the best epoch (its weights one per
feature, under best), each named exactly in the one-line error; a Ctrl-C mid-run keeps the best
epoch; and a resume of a checkpoint from before batch orders were recorded, or of one whose
batch order differs, says so exactly."""

from __future__ import annotations

import json

import pytest
from test_gaps_data import refused
from test_hardening_checkpoint import _fit, interrupt_at

from dlport.common import checkpoint as ckpt
from dlport.common.checkpoint import Checkpoint, Checkpointing
from dlport.common.config import TrainConfig
from dlport.common.errors import DlportError, Interrupted
from dlport.frameworks.numpy.trainer import NumpyTrainer

VALIDATED = TrainConfig(
    optimizer="adam", epochs=4, device="cpu", validation=0.2, early_stopping=10, restore_best=True
)
FIX = "re-create it with dlport train --checkpoint"


@pytest.fixture()
def validated(tmp_path, diabetes):
    path = tmp_path / "validated.json"
    NumpyTrainer().fit(diabetes, VALIDATED, callbacks=[Checkpointing(path=path)])
    return Checkpoint.read(path).payload


def _rewritten(tmp_path, payload, edit):
    payload = json.loads(json.dumps(payload))
    edit(payload)
    out = tmp_path / "edited.json"
    Checkpoint(payload).write(out)
    return out


def test_a_validated_checkpoint_holds_its_validation_losses_and_best_epoch(validated):
    assert len(validated["history"]["val_loss"]) == 4
    assert validated["best"]["epoch"] == 4
    assert len(validated["best"]["weights"]) == validated["data"]["n_features"] == 10


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            lambda p: p["history"].update(val_loss=[1.0]),
            "history.val_loss must be 4 numbers, got a list of 1",
        ),
        (
            lambda p: p["history"].update(val_loss=[1.0, 2.0, 3.0, 4.0, 5.0]),
            "history.val_loss must be 4 numbers, got a list of 5",
        ),
        (lambda p: p["history"].pop("val_loss"), "history.val_loss is missing"),
        (
            lambda p: p["best"].update(weights=[1.0]),
            "best.weights must be 10 numbers, got a list of 1",
        ),
        (
            lambda p: p["best"].update(weights=[1.0] * 11),
            "best.weights must be 10 numbers, got a list of 11",
        ),
        (lambda p: p["best"].pop("bias"), "best.bias is missing"),
        (lambda p: p["best"].update(epoch=0), "best.epoch must be a positive integer, got 0"),
    ],
    ids=["val-short", "val-long", "val-missing", "best-short", "best-long", "bias", "epoch"],
)
def test_a_bad_validation_history_or_best_epoch_is_named_exactly(
    tmp_path, validated, edit, problem
):
    out = _rewritten(tmp_path, validated, edit)
    assert refused(Checkpoint.read, out) == f"{out} is a malformed checkpoint ({problem}); {FIX}"


def test_without_validation_the_history_needs_no_validation_losses(tmp_path, validated):
    def unvalidated(payload):
        payload["config"].update(validation=0.0, early_stopping=None, restore_best=False)
        payload["history"]["val_loss"] = [1.0]  # not checked: the run kept none
        del payload["best"]

    out = _rewritten(tmp_path, validated, unvalidated)
    assert Checkpoint.read(out).payload["history"]["val_loss"] == [1.0]


def test_ctrl_c_mid_run_keeps_the_best_epoch_so_far(tmp_path, diabetes, monkeypatch):
    path = tmp_path / "stopped.json"
    interrupt_at(monkeypatch, 3)
    with pytest.raises(Interrupted, match=f"after epoch 2; checkpoint written to {path}"):
        _fit(diabetes, VALIDATED, callbacks=[Checkpointing(path=path)])
    payload = Checkpoint.read(path).payload
    assert payload["epoch"] == 2
    assert payload["best"]["epoch"] == 2 and len(payload["best"]["weights"]) == 10
    assert payload["best"]["weights"] == payload["params"]["weights"]


def test_a_resumed_best_epoch_is_saved_again_as_float64(tmp_path, validated, diabetes):
    def integral_best(payload):
        payload["history"]["val_loss"][0] = 0.0  # epoch 1 stays the best: later ones lose
        payload["best"] = {"epoch": 1, "weights": [0] * 10, "bias": 0}

    resumed = Checkpoint.read(_rewritten(tmp_path, validated, integral_best))
    path = tmp_path / "resumed.json"
    config = VALIDATED.replace(epochs=5)
    NumpyTrainer().fit(diabetes, config, callbacks=[Checkpointing(path=path)], resume=resumed)
    best = Checkpoint.read(path).payload["best"]
    assert best == {"epoch": 1, "weights": [0.0] * 10, "bias": 0.0}
    assert [type(w) for w in best["weights"]] == [float] * 10


class _Data:
    """Data as check_resumable sees it: its fingerprint, and how its batches are ordered."""

    def __init__(self, fingerprint, batch_order=None):
        self._fingerprint = fingerprint
        if batch_order is not None:
            self.batch_order = batch_order

    def fingerprint(self):
        return self._fingerprint


def test_a_checkpoint_without_a_batch_order_resumes_in_memory_data(validated):
    payload = json.loads(json.dumps(validated))
    del payload["rng"]["batch_order"]  # written before batch orders were recorded
    same = payload["data"]["fingerprint"]
    ckpt.check_resumable(Checkpoint(payload), "numpy", VALIDATED, _Data(same))
    streamed = _Data(same, batch_order="windows")
    with pytest.raises(DlportError) as info:
        ckpt.check_resumable(Checkpoint(payload), "numpy", VALIDATED, streamed)
    assert str(info.value) == (
        f"the checkpoint's batch order is {ckpt.IN_MEMORY_ORDER} but this run's is windows; "
        "resume with the same --max-memory"
    )
