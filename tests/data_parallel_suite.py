"""Data-parallel runs, the checks every framework with an engine passes (its test module
imports them): N workers compute what one process computes, a killed worker stops the run in
one line with nothing left behind, and its checkpoint resumes. Workers are local processes on
free localhost ports; every wait is bounded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FRAMEWORK

from dlport.cli.main import main
from dlport.common.config import TrainConfig
from dlport.common.data import load_dataset
from dlport.common.metrics import max_relative_difference

# 62 full batches of 64 and a tail of 35 rows: 4 workers take 9, 9, 9 and 8 of it.
DATA = "synthetic:n=4003,d=8,noise=0.1,seed=0"
TRAIN = ["--data", DATA, "--batch-size", "64", "--epochs", "3", "--device", "cpu"]


def _train(tmp_path: Path, label: str, *args: str) -> dict:
    out = tmp_path / f"{label}.json"
    assert main(["train", "--framework", FRAMEWORK, *TRAIN, "--json", str(out), *args]) == 0
    return json.loads(out.read_text())


def _params(result) -> np.ndarray:
    if isinstance(result, dict):
        return np.append(result["weights"], result["bias"])
    return np.append(result.weights, result.bias)


def _tolerance(trainer, dtype: str) -> tuple[float, float]:
    """(weights, loss) of N workers against one process."""
    if dtype == "float32":
        return 1e-5, 1e-5
    if trainer.conventions.parallel_sum_float32:  # MXNet's server (docs/design.md)
        return 1e-9, 1e-6
    return 1e-12, 1e-12


def test_a_batch_that_does_not_split_evenly_is_refused(capsys):
    assert main(["train", "--framework", FRAMEWORK, *TRAIN, "--workers", "3"]) == 2
    assert "--batch-size 64 does not split into 3 equal shards" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("optimizer", "workers", "dtype"),
    [("momentum", 2, "float64"), ("adam", 4, "float64"), ("adam", 2, "float32")],
    ids=["momentum-2-workers", "adam-4-workers", "adam-2-workers-float32"],
)
def test_workers_compute_what_one_process_computes(
    trainer, reference, tmp_path, optimizer, workers, dtype
):
    args = ["--optimizer", optimizer, "--dtype", dtype]
    one = _train(tmp_path, "one", *args)
    many = _train(tmp_path, "many", *args, "--workers", str(workers))
    weights, loss = _tolerance(trainer, dtype)
    assert max_relative_difference(_params(many), _params(one)) <= weights
    history = (np.array(r["history"]["loss"]) for r in (many, one))
    assert max_relative_difference(*history) <= loss
    if dtype == "float64":  # and the NumPy reference of the framework's convention
        config = TrainConfig(optimizer=optimizer, batch_size=64, epochs=3, device="cpu")
        expected = reference.fit(load_dataset(DATA), config)
        assert max_relative_difference(_params(many), _params(expected)) <= 1e-9


def test_exact_solver_sums_the_workers_normal_equations(trainer, tmp_path):
    one = _train(tmp_path, "one", "--solver", "exact")
    two = _train(tmp_path, "two", "--solver", "exact", "--workers", "2")
    # MXNet's server, when it rounds its sums to float32: up to 5.9e-8 measured.
    tolerance = 1e-6 if trainer.conventions.parallel_sum_float32 else 1e-10
    assert max_relative_difference(_params(two), _params(one)) <= tolerance


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _rank(pid: int) -> str | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [e.split(b"=", 1)[1].decode() for e in env if e.startswith(b"DLPORT_RANK=")]
    return ranks[0] if ranks else None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_worker_stops_the_run_and_its_checkpoint_resumes(trainer, tmp_path):
    # 8 steps an epoch, 40 epochs: the kill comes about the first checkpoint, most of the run
    # still to go.
    run = ["--data", "synthetic:n=512,d=4,seed=1", "--batch-size", "64", "--device", "cpu"]
    run += ["--optimizer", "adam", "--epochs", "40"]
    checkpoint = tmp_path / "run.ckpt.json"
    command = [sys.executable, "-m", "dlport", "train", "--framework", FRAMEWORK, *run]
    launcher = subprocess.Popen(
        [*command, "--workers", "2", "--checkpoint", str(checkpoint), "--checkpoint-every", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not checkpoint.exists() and launcher.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint in 180 s"
            time.sleep(0.02)
        workers = {_rank(pid): pid for pid in _children(launcher.pid)}
        assert launcher.poll() is None, "the run ended before a worker could be killed"
        os.kill(workers["1"], signal.SIGKILL)
        killed = time.monotonic()
        _, err = launcher.communicate(timeout=90)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert time.monotonic() - killed < 60
    assert launcher.returncode != 0
    assert "worker rank 1 was killed by SIGKILL" in err, err
    assert not any(_alive(pid) for pid in workers.values() if pid)
    resumed_json, whole_json = tmp_path / "resumed.json", tmp_path / "whole.json"
    resume = ["--resume", str(checkpoint), "--workers", "2", "--json", str(resumed_json)]
    assert main(["train", "--framework", FRAMEWORK, *resume]) == 0
    assert main(["train", "--framework", FRAMEWORK, *run, "--json", str(whole_json)]) == 0
    resumed, whole = (json.loads(p.read_text()) for p in (resumed_json, whole_json))
    assert (
        max_relative_difference(_params(resumed), _params(whole))
        <= _tolerance(trainer, "float64")[0]
    )
