"""A checkpoint from any framework predicts the same in every other framework's env."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dlport.common.envs import find_python, subprocess_env
from dlport.common.metrics import max_relative_difference

FRAMEWORKS = ["numpy", "torch", "tensorflow", "mxnet"]


def python_of(framework: str) -> str:
    if framework == "numpy":
        return sys.executable
    python = find_python(framework, {})
    assert python is not None, f"the {framework} env is not built (tox -e {framework})"
    return str(python)


def dlport(framework: str, *args: str) -> None:
    env = subprocess_env()
    command = [python_of(framework), "-m", "dlport", *args]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr


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
