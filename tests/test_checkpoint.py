"""Checkpoints: format, checksum, resume, predict; malformed input never escapes as a crash."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli import interruptible

from dlport.common.checkpoint import SCHEMA_VERSION, Checkpoint, Checkpointing, data_fingerprint
from dlport.common.config import TrainConfig
from dlport.common.data import load_dataset
from dlport.common.errors import DlportError
from dlport.frameworks.numpy.trainer import NumpyTrainer

CONFIG = TrainConfig(optimizer="adam", epochs=6)


@pytest.fixture()
def saved(tmp_path, diabetes):
    path = tmp_path / "run.ckpt.json"
    result = NumpyTrainer().fit(diabetes, CONFIG, callbacks=[Checkpointing(path=path)])
    return path, result


def test_checkpoint_holds_the_model_in_original_units(saved):
    path, result = saved
    checkpoint = Checkpoint.read(path)
    weights, bias = checkpoint.model
    assert weights.tolist() == result.weights and bias == result.bias
    assert checkpoint.epoch == 6 and checkpoint.framework == "numpy"
    assert checkpoint.payload["history"]["loss"] == result.history["loss"]
    assert checkpoint.payload["optimizer"]["step"] == 6 * 14
    assert oct(path.stat().st_mode & 0o777) != "0o600"


def rewrite(path, change):
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["payload"]["model"].update(bias=1.0), "fails its checksum"),
        (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), "newer than this dlport"),
        (lambda d: d.update(format="something"), "not a dlport checkpoint"),
    ],
    ids=["edited", "newer-schema", "other-format"],
)
def test_damaged_checkpoints_are_refused(saved, change, message):
    path, _ = saved
    rewrite(path, change)
    with pytest.raises(DlportError, match=message):
        Checkpoint.read(path)


def test_truncated_checkpoint_is_refused(saved):
    path, _ = saved
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(DlportError, match="truncated or corrupted"):
        Checkpoint.read(path)


@pytest.mark.parametrize("stop_after", [1, 3, 5])
def test_resume_continues_bit_for_bit(tmp_path, diabetes, saved, stop_after):
    _, full = saved
    partial = tmp_path / "partial.json"
    NumpyTrainer().fit(
        diabetes, CONFIG.replace(epochs=stop_after), callbacks=[Checkpointing(path=partial)]
    )
    resumed = NumpyTrainer().fit(diabetes, CONFIG, resume=Checkpoint.read(partial))
    assert resumed.weights == full.weights and resumed.bias == full.bias
    assert resumed.history == full.history


@pytest.mark.parametrize(
    ("config", "data", "message"),
    [
        (CONFIG.replace(lr=0.1), "diabetes", "settings; these differ: \\['lr'\\]"),
        (CONFIG, "synthetic:n=442,d=10", "other data"),
        (CONFIG.replace(epochs=3), "diabetes", "past --epochs"),
    ],
    ids=["other-settings", "other-data", "fewer-epochs"],
)
def test_resume_refuses_a_different_run(saved, config, data, message):
    path, _ = saved
    with pytest.raises(DlportError, match=message):
        NumpyTrainer().fit(load_dataset(data), config, resume=Checkpoint.read(path))


def test_periodic_checkpoints(tmp_path, diabetes, monkeypatch):
    path = tmp_path / "every.json"
    written, write = [], Checkpoint.write

    def record(self, target):
        written.append((self.epoch, target))
        write(self, target)

    monkeypatch.setattr(Checkpoint, "write", record)
    plan = Checkpointing(path=path, every=2)
    NumpyTrainer().fit(diabetes, CONFIG.replace(epochs=5), callbacks=[plan])
    assert written == [(2, path), (4, path), (5, path)]  # every 2, then the end
    assert Checkpoint.read(path).epoch == 5


def test_fingerprint_tells_data_apart(diabetes):
    X = diabetes.X.copy()
    X[0, 0] += 1e-12
    assert data_fingerprint(X, diabetes.y) != data_fingerprint(diabetes.X, diabetes.y)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_are_refused_cleanly(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("fuzz") / "c.json"
    path.write_bytes(blob)
    with pytest.raises(DlportError):
        Checkpoint.read(path)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_mutated_checkpoints_are_refused_or_identical(tmp_path_factory, diabetes, data):
    """Flip, cut or insert bytes anywhere: the reader refuses, or the content is unchanged."""
    folder = tmp_path_factory.mktemp("mut")
    path = folder / "c.json"
    NumpyTrainer().fit(diabetes, CONFIG.replace(epochs=1), callbacks=[Checkpointing(path=path)])
    original, payload = path.read_bytes(), Checkpoint.read(path).payload
    at = data.draw(st.integers(0, len(original) - 1))
    kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if kind == "flip":
        mutated = original[:at] + bytes([original[at] ^ 0x55]) + original[at + 1 :]
    elif kind == "cut":
        mutated = original[:at]
    else:
        mutated = original[:at] + data.draw(st.binary(min_size=1, max_size=8)) + original[at:]
    path.write_bytes(mutated)
    try:
        checkpoint = Checkpoint.read(path)
    except DlportError:
        return
    assert checkpoint.payload == payload


def _train_command(path, epochs):
    return [
        sys.executable,
        "-m",
        "dlport",
        "train",
        "--data",
        "synthetic:n=200000,d=8",
        "--optimizer",
        "momentum",
        "--epochs",
        str(epochs),
        "--checkpoint",
        str(path),
        "--checkpoint-every",
        "1",
    ]


def test_killed_runs_leave_a_complete_checkpoint_and_resume_to_identical_weights(tmp_path):
    """SIGKILL at random moments: the file on disk is always a whole checkpoint, old or new,
    and resuming from it ends with exactly the weights of an uninterrupted run."""
    epochs = 16
    reference = tmp_path / "reference.json"
    subprocess.run(_train_command(reference, epochs), check=True, capture_output=True)
    want = Checkpoint.read(reference).model
    rng = random.Random(0)
    path = tmp_path / "killed.json"
    kills = stalls = 0
    seen_epochs = []
    while True:
        command = _train_command(path, epochs)
        if path.exists():
            command += ["--resume", str(path)]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # A loaded machine starts the interpreter slowly: each kill that saw no new epoch
        # waits longer next time, so the run always gets on (34 kills of 40 under load before).
        time.sleep(rng.uniform(0.3, 1.1) * (1 + stalls))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if path.exists():
            checkpoint = Checkpoint.read(path)  # never half-written
            stalls = stalls + 1 if seen_epochs[-1:] == [checkpoint.epoch] else 0
            seen_epochs.append(checkpoint.epoch)
            if proc.returncode == 0:
                break
        else:
            stalls += 1
        assert kills < 40, "the run never finished"
    got = Checkpoint.read(path).model
    assert got[0].tolist() == want[0].tolist() and got[1] == want[1]
    assert seen_epochs == sorted(seen_epochs) and seen_epochs[-1] == epochs
    print(f"{kills} kills, checkpoint epochs seen: {seen_epochs}")
    assert kills >= 3


def test_ctrl_c_writes_a_checkpoint_and_exits_130(tmp_path):
    path = tmp_path / "interrupted.json"
    proc = subprocess.Popen(
        _train_command(path, 400),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    deadline = time.monotonic() + 120  # a loaded machine imports the framework slowly
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # an epoch has ended (--checkpoint-every 1): Ctrl-C has one to save
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "checkpoint written to" in err and "--resume" in err
    assert len(err.strip().splitlines()) == 1
    assert Checkpoint.read(path).epoch >= 1
