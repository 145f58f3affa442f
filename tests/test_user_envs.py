"""`dlport env create|list|remove` and compare finding those envs from any folder."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from test_cli import assert_one_line_error, dlport
from test_compare import fake_python

from dlport.cli import main
from dlport.common import envs as envs_module
from dlport.common import user_envs
from dlport.common.envs import find_python


@pytest.fixture
def envs(tmp_path, monkeypatch):
    home = tmp_path / "envs"
    monkeypatch.setenv("DLPORT_ENVS", str(home))
    return home


def fake_env(home, framework: str, python: str):
    """A finished env as `dlport env create` leaves it, with ``python`` as its interpreter."""
    folder = home / framework
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").symlink_to(python)
    (folder / user_envs.MARKER).write_text(json.dumps({"framework": framework, "python": "3"}))
    return folder / "bin" / "python"


ROOT = str(Path(__file__).resolve().parents[1])  # this checkout: tox runs dlport installed


def test_create_builds_a_working_env_that_list_shows_and_remove_deletes(envs, tmp_path):
    created = dlport("env", "create", "numpy", "--from", ROOT, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    python = envs / "numpy" / "bin" / "python"
    assert created.stdout == f"numpy env ready: {python} (compare and bench use it)\n"
    assert created.stderr == ""  # piped: no progress display
    listed = json.loads(dlport("env", "list", "--json").stdout)
    assert [(e["framework"], e["path"]) for e in listed] == [("numpy", str(envs / "numpy"))]
    frameworks = subprocess.run(
        [str(python), "-m", "dlport", "frameworks", "--json"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )  # fmt: skip
    assert json.loads(frameworks.stdout)[0] | {"version": ""} == {
        "framework": "numpy", "available": True, "version": "", "devices": ["cpu"],
        "install": "tox -e core", "data_parallel": False, "reason": "",
    }  # fmt: skip
    assert dlport("env", "remove", "numpy").stdout == f"removed {envs / 'numpy'}\n"
    assert (
        not (envs / "numpy").exists() and json.loads(dlport("env", "list", "--json").stdout) == []
    )


def test_a_failed_build_leaves_nothing_and_says_why_in_one_line(envs):
    run = dlport("env", "create", "numpy", "--pip=--no-such-option", "--from", ROOT)
    assert_one_line_error(run, 2, "numpy: installing ")
    assert "no such option: --no-such-option" in run.stderr
    assert list(envs.iterdir()) == []  # neither the env nor its partial build


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "caffe"], "unknown framework 'caffe'"),
        (["remove", "torch"], "no env for torch under"),
        (["create", "numpy", "--python", "/no/such/python"], "cannot run --python /no/such"),
        (["create", "torch", "--with", "mlflow,gpu"], "--with gpu: not an extra of dlport"),
    ],
    ids=["unknown", "remove-missing", "bad-python", "bad-extra"],
)
def test_bad_env_commands_are_one_line(envs, args, message):
    assert_one_line_error(dlport("env", *args), 2, message)


def test_python_then_the_users_env_then_tox(envs, tmp_path):
    assert find_python("torch", {}) != envs / "torch" / "bin" / "python"
    made = fake_env(envs, "torch", fake_python(tmp_path, "good"))
    assert find_python("torch", {}) == made
    assert find_python("torch", {"torch": "/x/python"}) == user_envs.Path("/x/python")
    (envs / "torch" / user_envs.MARKER).unlink()  # an unfinished build is not an env
    assert find_python("torch", {}) != made


def test_compare_from_an_empty_folder_finds_the_users_envs(envs, tmp_path, monkeypatch):
    """As installed (no checkout's .tox to fall back on): the user's envs, or the fix."""
    fake_env(envs, "torch", fake_python(tmp_path, "good"))
    folder = tmp_path / "empty"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setattr(envs_module, "project_roots", lambda: [])
    args = ["compare", "--frameworks", "torch,jax", "--optimizers", "sgd", "--epochs", "2"]
    assert main([*args, "--out", "out"]) == 4
    report = json.loads((folder / "out" / "report.json").read_text())
    rows = report["cases"][0]["frameworks"]
    assert rows["torch"]["status"] == "ok" and rows["torch"]["parity"]["passed"]
    assert rows["jax"]["status"] == "missing"  # jax: a framework every tested Python runs
    assert rows["jax"]["fix"] == "dlport env create jax, or --python jax=/path/to/python"
    assert rows["jax"]["reason"] == f"no jax environment ({envs / 'jax'})"


def test_with_adds_extras_to_the_frameworks_own(tmp_path):
    wanted = user_envs.requirement("torch", str(tmp_path), ["mlflow", "onnx"])
    assert wanted == f"dlport[torch,mlflow,onnx] @ {tmp_path.as_uri()}"
    assert user_envs.requirement("numpy", str(tmp_path), ["mlflow"]).startswith("dlport[mlflow] @")
    assert user_envs.requirement("numpy", str(tmp_path)).startswith("dlport @")
