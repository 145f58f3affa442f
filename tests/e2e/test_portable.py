"""A checkpoint from any framework predicts the same in every other framework's env."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def python(framework: str, *args: str, stdin: str = "") -> str:
    """Run ``framework``'s env's Python; its stdout."""
    command = [python_of(framework), *args]
    run = subprocess.run(command, input=stdin, capture_output=True, text=True,
                         env=subprocess_env(), timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stdout


def dlport(framework: str, *args: str) -> str:
    return python(framework, "-m", "dlport", *args)


# One process per framework runs each CLI command several times: a framework's start (up to
# 10 s for TensorFlow) is paid once per env, not once per checkpoint.
_CLI_EACH = """
import sys
from dlport.cli import main
for line in sys.stdin.read().splitlines():
    code = main(line.split("\\t"))
    if code:
        sys.exit(f"exit code {code}: dlport {line}")
"""


def dlport_each(framework: str, commands: list[list[str]]) -> None:
    """``dlport COMMAND`` for each of ``commands``, in one process of ``framework``'s env."""
    python(framework, "-c", _CLI_EACH, stdin="\n".join("\t".join(c) for c in commands))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """A checkpoint trained by each framework, in its own env."""
    folder = tmp_path_factory.mktemp("checkpoints")
    made = {name: folder / f"{name}.ckpt.json" for name in FRAMEWORKS}
    for name, checkpoint in made.items():
        dlport(name, "train", "--framework", name, "--data", "diabetes", "--optimizer", "adam",
               "--epochs", "5", "--checkpoint", str(checkpoint))  # fmt: skip
    return made


@pytest.fixture(scope="module")
def predictions(checkpoints, tmp_path_factory) -> dict[tuple[str, str], np.ndarray]:
    """``dlport predict`` of every checkpoint in every framework's env: (trained_by,
    predicted_by) -> predictions."""
    folder = tmp_path_factory.mktemp("predictions")
    out = {(t, p): folder / f"{t}-by-{p}.csv" for t in FRAMEWORKS for p in FRAMEWORKS}
    for by in FRAMEWORKS:
        dlport_each(by, [["predict", "--checkpoint", str(checkpoints[trained]), "--data",
                          "diabetes", "--framework", by, "--out", str(out[trained, by])]
                         for trained in FRAMEWORKS])  # fmt: skip
    return {pair: np.loadtxt(path, skiprows=1) for pair, path in out.items()}


@pytest.mark.parametrize("trained_by", FRAMEWORKS)
def test_every_framework_predicts_what_the_trainer_predicts(predictions, trained_by):
    own = predictions[trained_by, trained_by]
    differences = {
        by: max_relative_difference(predictions[trained_by, by], own) for by in FRAMEWORKS
    }
    assert all(d < 1e-9 for d in differences.values()), differences


_LOAD_AND_PREDICT = """
import sys, numpy as np
from dlport.common.registry import get_trainer
from dlport.common.data import load_dataset
trainer = get_trainer(sys.argv[1])
X = load_dataset("diabetes").X
for model in sys.argv[2:]:
    w, b = trainer.import_native(model)
    np.savetxt(sys.stdout, trainer.predict(w, b, X, device="cpu")[None])
"""


@pytest.fixture(scope="module")
def keras_predictions(checkpoints, tmp_path_factory) -> dict[tuple[str, str], np.ndarray]:
    """Each Keras port's export of the NumPy checkpoint, loaded by every Keras port:
    (written_by, loaded_by) -> predictions."""
    folder = tmp_path_factory.mktemp("keras")
    models = {name: str(folder / f"{name}.keras") for name in KERAS}
    for name, model in models.items():
        dlport(name, "export", "--checkpoint", str(checkpoints["numpy"]), "--framework", name,
               "--out", model)  # fmt: skip
    loaded = {}
    for by in KERAS:
        rows = python(by, "-c", _LOAD_AND_PREDICT, by, *models.values()).splitlines()
        for name, row in zip(models, rows, strict=True):
            loaded[name, by] = np.array(row.split(), float)
    return loaded


@pytest.mark.parametrize("written_by", KERAS)
def test_a_keras_file_from_one_backend_predicts_the_same_on_every_backend(
    keras_predictions, written_by
):
    """A .keras file holds no backend: each Keras port loads any other's export."""
    want = keras_predictions[written_by, written_by]
    assert all(
        max_relative_difference(keras_predictions[written_by, by], want) < 1e-12 for by in KERAS
    )
