"""A checkpoint from any framework predicts the same in every other framework's env."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dlport.common.envs import find_python, subprocess_env
from dlport.common.metrics import max_relative_difference
from dlport.common.registry import FRAMEWORKS as REGISTRY
from dlport.common.registry import framework_names

FRAMEWORKS = framework_names()
KERAS = [name for name, entry in REGISTRY.items() if entry.keras_backend]


def python_of(framework: str) -> str:
    if framework == "numpy":
        return sys.executable
    python = find_python(framework, {})
    assert python is not None, f"the {framework} env is not built (tox -e {framework})"
    return str(python)


def python(framework: str, *args: str) -> str:
    """Run ``framework``'s env's Python; its stdout."""
    command = [python_of(framework), *args]
    run = subprocess.run(command, capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert run.returncode == 0, run.stderr
    return run.stdout


def dlport(framework: str, *args: str) -> str:
    return python(framework, "-m", "dlport", *args)


@pytest.mark.parametrize("trained_by", FRAMEWORKS)
def test_every_framework_predicts_what_the_trainer_predicts(tmp_path, trained_by):
    checkpoint = tmp_path / "model.ckpt.json"
    dlport(
        trained_by,
        "train",
        "--framework",
        trained_by,
        "--data",
        "diabetes",
        "--optimizer",
        "adam",
        "--epochs",
        "5",
        "--checkpoint",
        str(checkpoint),
    )
    predictions = {}
    for framework in FRAMEWORKS:
        out = tmp_path / f"{framework}.csv"
        dlport(
            framework,
            "predict",
            "--checkpoint",
            str(checkpoint),
            "--data",
            "diabetes",
            "--framework",
            framework,
            "--out",
            str(out),
        )
        predictions[framework] = np.loadtxt(out, skiprows=1)
    own = predictions[trained_by]
    differences = {f: max_relative_difference(p, own) for f, p in predictions.items()}
    assert all(d < 1e-9 for d in differences.values()), differences


_LOAD_AND_PREDICT = """
import sys, numpy as np
from dlport.common.registry import get_trainer
from dlport.common.data import load_dataset
trainer = get_trainer(sys.argv[1])
w, b = trainer.import_native(sys.argv[2])
np.savetxt(sys.stdout, trainer.predict(w, b, load_dataset("diabetes").X, device="cpu"))
"""


@pytest.mark.parametrize("written_by", KERAS)
def test_a_keras_file_from_one_backend_predicts_the_same_on_every_backend(tmp_path, written_by):
    """A .keras file holds no backend: each Keras port loads any other's export."""
    checkpoint, model = tmp_path / "model.ckpt.json", tmp_path / "model.keras"
    dlport("numpy", "train", "--data", "diabetes", "--epochs", "3", "--checkpoint", str(checkpoint))
    dlport(written_by, "export", "--checkpoint", str(checkpoint), "--framework", written_by,
           "--out", str(model))  # fmt: skip
    predictions = {
        framework: np.loadtxt(
            python(framework, "-c", _LOAD_AND_PREDICT, framework, str(model)).splitlines()
        )
        for framework in KERAS
    }
    want = predictions[written_by]
    assert all(max_relative_difference(p, want) < 1e-12 for p in predictions.values())
