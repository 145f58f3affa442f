"""compare and bench against hostile surroundings: a poisoned working directory or PYTHONPATH,
valid-JSON garbage from a child, grandchildren, signals, odd paths and arguments."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_cli import assert_one_line_error, dlport, interruptible
from test_compare import fake_python, run_compare, statuses

import dlport.bench.baselines.torch as torch_baseline
from dlport.bench.worker import check_figures, idiomatic
from dlport.bench.workloads import WORKLOADS
from dlport.cli import main
from dlport.cli import train as cli_train
from dlport.common.checkpoint import Checkpoint
from dlport.common.envs import SOURCE_ROOT, child_command, find_python, run_json
from dlport.common.errors import DlportError

POISON = "raise ImportError('poisoned numpy: a stray numpy.py was imported')\n"


def poisoned_dir(path: Path) -> Path:
    path.mkdir()
    (path / "numpy.py").write_text(POISON)
    return path


def train_numpy(json_path: Path):
    """`dlport train` of the NumPy reference in a child, exactly as compare starts one."""
    args = ["dlport", "train", "--framework=numpy", "--data=diabetes", "--epochs=2"]
    return run_json("torch", Path(sys.executable), [*args, f"--json={json_path}"], json_path, 120)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone, whether or not init has reaped it yet
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def wait_for(condition, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- 6: the child's environment is its own ---------------------------------------------------


def test_a_numpy_py_in_the_working_directory_reaches_no_child(tmp_path, monkeypatch):
    monkeypatch.chdir(poisoned_dir(tmp_path / "cwd"))
    outcome = train_numpy(tmp_path / "r.json")
    assert outcome.ok, outcome.reason
    assert outcome.payload["framework"] == "numpy"
    code, _, _ = run_compare(tmp_path, {"torch": "good"}, "--optimizers", "sgd")
    assert code == 0


def test_an_inherited_pythonpath_reaches_no_child(tmp_path, monkeypatch):
    poison = poisoned_dir(tmp_path / "poison")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(poison), os.environ.get("PYTHONPATH", "")])
    )
    outcome = train_numpy(tmp_path / "r.json")
    assert outcome.ok, outcome.reason


def test_envs_are_found_in_the_project_never_in_the_working_directory(tmp_path, monkeypatch):
    planted = tmp_path / ".tox" / "torch" / "bin" / "python"
    planted.parent.mkdir(parents=True)
    planted.write_text("#!/bin/sh\nexit 1\n")
    planted.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    assert find_python("torch", {}) != planted.absolute()
    assert find_python("torch", {"torch": "rel/python"}) == tmp_path / "rel" / "python"


def test_children_start_isolated_with_this_source_tree():
    command = child_command(Path("/env/bin/python"), "dlport", ["train"])
    assert command[:3] == ["/env/bin/python", "-E", "-c"]
    assert command[4:] == [str(SOURCE_ROOT or ""), "dlport", "train"]


# -- 7: valid JSON that is not the result asked for ----------------------------------------------


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("list", "a result is a JSON object, not a list"),
        ("strings", "weights and bias must be finite numbers"),
        ("shape", "weights is not a list of 10 numbers"),
        ("missing", "metrics must hold"),
        ("nan", "history.loss is not a list of finite numbers"),
        ("config", "result is for another config (differs in lr)"),
        ("framework", "result is from 'torch', not 'mxnet'"),
    ],
)
def test_garbage_from_one_child_is_invalid_and_the_others_still_run(tmp_path, mode, reason):
    code, report, _ = run_compare(tmp_path, {"torch": "good", "mxnet": mode}, "--optimizers", "sgd")
    assert code == 4
    assert statuses(report) == {"torch": "ok", "mxnet": "invalid"}
    row = report["cases"][0]["frameworks"]["mxnet"]
    assert reason in row["reason"] and row["result"] is None and "runs this dlport" in row["fix"]


def _figures(**changes):
    figures = {
        "framework": "torch",
        "workload": "tiny",
        "device": "cpu",
        "dtype": "float32",
        "repeats": 2,
        "tf32": False,
        "framework_version": "2",
        "status": "ok",
        "peak_rss_mb": 10.0,
        "trainer": {
            "samples_per_second": [1.0, 2.0],
            "steps_per_second": [1.0, 2.0],
            "warmup_seconds": [0.0, 0.1],
            "ttq_seconds": [1.0, 1.0],
            "ttq_epochs": [3, None],
            "ttq_reached": False,
            "exact_seconds": [0.5, 0.4],
        },
    }
    return figures | changes


ASKED = {k: _figures()[k] for k in ("framework", "workload", "device", "dtype", "repeats", "tf32")}


@pytest.mark.parametrize(
    ("figures", "reason"),
    [
        ([], "a result is a JSON object, not a list"),
        (_figures(workload="large"), "workload is 'large', not the 'tiny' asked for"),
        (_figures(status="fine"), "status 'fine'"),
        (_figures(tf32=True), "tf32 is True, not the False asked for"),
        (_figures(trainer={}), "trainer.samples_per_second is not 2 positive"),
        (
            _figures(trainer=_figures()["trainer"] | {"steps_per_second": ["1", "2"]}),
            "trainer.steps_per_second is not 2",
        ),
        (_figures(idiomatic={"samples_per_second": [1.0]}), "idiomatic.samples_per_second"),
        (_figures(peak_rss_mb=None), "peak_rss_mb"),
    ],
    ids=["list", "workload", "status", "tf32", "missing", "strings", "shape", "rss"],
)
def test_bench_refuses_figures_that_are_not_what_it_asked_for(figures, reason):
    assert check_figures(_figures(), ASKED) == ""
    assert reason in check_figures(figures, ASKED)


def test_bench_reports_a_garbage_child_and_still_runs_the_others(tmp_path):
    code = main(
        [
            "bench",
            "--frameworks",
            "torch,mxnet",
            "--python",
            f"torch={fake_python(tmp_path, 'good')}",
            "--python",
            f"mxnet={fake_python(tmp_path, 'list')}",
            "--workloads",
            "tiny",
            "--repeats",
            "1",
            "--out",
            str(tmp_path / "bench"),
        ]
    )
    assert code == 4
    [saved] = (tmp_path / "bench").glob("*.json")
    rows = {r["framework"]: r for r in json.loads(saved.read_text())["rows"]}
    assert {n: r["status"] for n, r in rows.items()} == {
        "numpy": "ok",
        "torch": "ok",
        "mxnet": "invalid",
    }
    assert "not a list" in rows["mxnet"]["reason"]


# -- 10: timeouts, grandchildren, Ctrl-C and SIGTERM ---------------------------------------------


def test_a_timed_out_child_takes_its_grandchildren_with_it(tmp_path):
    code, report, out = run_compare(
        tmp_path, {"torch": "orphan"}, "--timeout", "6", "--optimizers", "sgd"
    )
    pid_file = out / "results" / "torch-sgd.json.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    try:
        assert code == 4 and statuses(report) == {"torch": "timeout"}
        assert pid is not None, "the child did not start its grandchild in time"
        assert wait_for(lambda: not alive(pid), 20), "the grandchild outlived the timeout"
    finally:
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1", "soon"])
@pytest.mark.parametrize("command", ["compare", "bench"])
def test_timeout_must_be_a_positive_number_of_seconds(tmp_path, capsys, command, value):
    out = tmp_path / "never"
    assert main([command, "--out", str(out), "--timeout", value]) == 2
    err = capsys.readouterr().err
    assert f"argument --timeout: expected a positive number of seconds, got '{value}'" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_an_infinite_timeout_is_one_line_from_the_command_line():
    run = dlport("compare", "--timeout", "inf")
    assert_one_line_error(run, 2, "argument --timeout: expected a positive number of seconds")


def test_ctrl_c_stops_compare_and_its_child_leaves_nothing_behind(tmp_path):
    """A terminal's Ctrl-C signals the whole foreground group: here compare and what it ran."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = tmp_path / "report"
    fake = fake_python(tmp_path, "train")
    command = [sys.executable, "-m", "dlport", "compare", "--frameworks", "torch"]
    command += ["--python", f"torch={fake}", "--optimizers", "sgd", "--epochs", "3"]
    proc = subprocess.Popen(
        [*command, "--out", str(out)],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=interruptible,
    )
    started = out / "results" / "torch-sgd.json.started"
    try:
        assert wait_for(started.exists), "the child never started"
        time.sleep(1.0)  # epochs complete: an interrupted `dlport train` would save one
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert list(cwd.iterdir()) == []  # no dlport-interrupted-*.ckpt.json
    child = int(started.read_text())
    assert wait_for(lambda: not alive(child), 20), "the child outlived compare"
    assert proc.returncode == 130, err
    assert err.strip() == "dlport: interrupted; compare stopped"


def test_sigterm_saves_the_last_epoch_and_exits_143(tmp_path):
    path = tmp_path / "model.ckpt.json"
    command = [sys.executable, "-m", "dlport", "train", "--data", "diabetes", "--epochs"]
    command += ["100000", "--checkpoint", str(path), "--checkpoint-every", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(path.exists), "no checkpoint was written"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert "checkpoint written to" in err and len(err.strip().splitlines()) == 1
    assert Checkpoint.read(path).epoch >= 1


def test_an_interrupt_after_the_checkpoint_was_written_does_not_claim_nothing_saved(
    tmp_path, monkeypatch, capsys
):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_train, "print_summary", interrupted)
    path = tmp_path / "model.ckpt.json"
    code = main(["train", "--data", "diabetes", "--epochs", "2", "--checkpoint", str(path)])
    assert code == 130
    assert capsys.readouterr().err == f"dlport: interrupted; checkpoint written to {path}\n"


# -- 12: paths ----------------------------------------------------------------------------------


def test_an_out_folder_starting_with_a_dash_works(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake = fake_python(tmp_path, "good")
    code = main(
        ["compare", "--frameworks", "torch", "--python", f"torch={fake}", "--out=-weird"]
        + ["--optimizers", "sgd", "--epochs", "2"]
    )
    assert code == 0 and (tmp_path / "-weird" / "report.json").exists()
    code = main(
        ["bench", "--frameworks", "mxnet", "--python", "mxnet=/no/such/python", "--out=-b"]
        + ["--workloads", "tiny", "--repeats", "1"]
    )
    [saved] = (tmp_path / "-b").glob("*.json")
    assert [r["status"] for r in json.loads(saved.read_text())["rows"]] == ["ok", "missing"]


def test_an_os_error_naming_no_file_names_the_output(tmp_path, monkeypatch, capsys):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("dlport.common.results.write_text_atomic", no_space)
    path = tmp_path / "r.json"
    assert main(["train", "--data", "diabetes", "--epochs", "1", "--json", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"dlport: error: cannot use --json {path} (No space left on device); give another path\n"
    )


def test_export_creates_missing_folders(trainer, tmp_path):
    if trainer.native_suffix is None:  # numpy: the checkpoint is its format
        with pytest.raises(DlportError, match="no native model format"):
            trainer.export_native(np.ones(2), 0.5, str(tmp_path / "m"))
        return
    path = tmp_path / "new" / "dir" / f"model{trainer.native_suffix}"
    trainer.export_native(np.array([1.5, -2.0]), 0.25, str(path))
    weights, bias = trainer.import_native(str(path))
    assert weights.tolist() == [1.5, -2.0] and bias == 0.25
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no staging left


# -- 13: the torch baseline on the row's device ------------------------------------------------


def test_the_idiomatic_baseline_runs_on_the_rows_device(monkeypatch):
    assert torch_baseline.torch_device("gpu") == "cuda"
    assert torch_baseline.torch_device("cpu") == "cpu"
    seen = []

    def fit(X, y, batch_size, epochs, device="cpu"):
        seen.append(device)
        return [1.0] * epochs

    monkeypatch.setattr(torch_baseline, "idiomatic_fit", fit)
    X, y = np.ones((64, 2), dtype=np.float32), np.ones(64, dtype=np.float32)
    figures = idiomatic("torch", X, y, 32, WORKLOADS["tiny"], 2, "gpu")
    assert seen == ["gpu", "gpu"] and len(figures["samples_per_second"]) == 2
