"""The command line, run as a user runs it: in a subprocess, output piped."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from dlport.common.registry import framework_names, ported_names

# The frameworks' own packages (a registry name's last part: keras-torch -> torch), and the
# libraries the ports import beside them.
FRAMEWORK_MODULES = sorted({n.split("-")[-1] for n in ported_names()} | {"keras", "optax", "flax"})


def dlport(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "dlport", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def interruptible() -> None:
    """preexec_fn for a child a test will Ctrl-C: a shell's background job (`cmd &`) ignores
    SIGINT, its children inherit that, and Python then installs no KeyboardInterrupt at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def assert_one_line_error(run, code: int, message: str) -> None:
    """dlport's contract for bad input: the exit code, one line naming it, no traceback."""
    assert run.returncode == code, run.stderr
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr


def test_import_and_help_import_no_framework():
    code = (
        "import sys, dlport\n"
        "from dlport.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {FRAMEWORK_MODULES!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_train_json_to_stdout_matches_lstsq_on_diabetes():
    run = dlport(
        "train", "--framework", "numpy", "--data", "diabetes", "--solver", "exact", "--json", "-"
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    from dlport.common.data import load_dataset

    data = load_dataset("diabetes")
    expected = np.linalg.lstsq(np.hstack([data.X, np.ones((442, 1))]), data.y, rcond=None)[0]
    got = np.append(result["weights"], result["bias"])
    assert np.max(np.abs(got - expected) / np.maximum(1, np.abs(expected))) < 1e-10
    for key in (
        "framework",
        "framework_version",
        "device",
        "dtype",
        "config",
        "weights",
        "bias",
        "history",
        "metrics",
        "timing",
    ):
        assert key in result
    assert result["timing"]["fit_seconds"] > 0


def test_train_prints_a_summary_and_writes_json(tmp_path):
    out = tmp_path / "r.json"
    run = dlport(
        "train", "--data", "diabetes", "--optimizer", "adam", "--epochs", "3", "--json", str(out)
    )
    assert run.returncode == 0, run.stderr
    assert "mse" in run.stdout and "bmi" in run.stdout
    assert run.stderr == ""  # piped: no progress bar
    assert len(json.loads(out.read_text())["history"]["loss"]) == 3


def test_frameworks_lists_every_framework():
    run = dlport("frameworks", "--json")
    rows = {r["framework"]: r for r in json.loads(run.stdout)}
    assert list(rows) == framework_names()
    assert rows["numpy"]["available"] and rows["numpy"]["devices"] == ["cpu"]


BAD_INPUTS = {
    "missing-file": (["--data", "no/such.csv"], "data file not found"),
    "missing-target": (["--data", "{csv}", "--target", "nope"], "target column 'nope'"),
    "non-numeric-target": (["--data", "{text_csv}"], "is not a number"),
    "nan": (["--data", "{nan_csv}"], "NaN or inf"),
    "empty": (["--data", "{empty_csv}"], "no data rows"),
    "length-mismatch": (["--data", "{mismatch_npz}"], "must match"),
    "unknown-optimizer": (["--data", "diabetes", "--optimizer", "lbfgs"], "invalid choice"),
    "zero-lr": (["--data", "diabetes", "--lr", "0"], "lr must be a positive number"),
    "negative-batch": (["--data", "diabetes", "--batch-size", "-4"], "batch size"),
    "unknown-framework": (["--data", "diabetes", "--framework", "caffe"], "unknown framework"),
}


@pytest.fixture()
def bad_files(tmp_path):
    files = {
        "csv": "a,b\n1,2\n3,4\n",
        "text_csv": "a,b\n1,two\n",
        "nan_csv": "a,b\n1,2\nnan,3\n",
        "empty_csv": "a,b\n",
    }
    paths = {}
    for key, text in files.items():
        (tmp_path / f"{key}.csv").write_text(text)
        paths[key] = str(tmp_path / f"{key}.csv")
    np.savez(tmp_path / "m.npz", X=np.ones((3, 2)), y=np.ones(2))
    paths["mismatch_npz"] = str(tmp_path / "m.npz")
    return paths


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, bad_files, case):
    args, message = BAD_INPUTS[case]
    out = tmp_path / "result.json"
    run = dlport("train", *[a.format(**bad_files) for a in args], "--json", str(out))
    assert_one_line_error(run, 2, message)
    assert not out.exists()
    assert list(tmp_path.glob("*.tmp")) == []


def test_divergence_exits_3_with_epoch_and_hint(tmp_path):
    out = tmp_path / "result.json"
    run = dlport("train", "--data", "diabetes", "--lr", "5", "--no-standardize", "--json", str(out))
    assert_one_line_error(run, 3, "diverged at epoch")
    assert "--lr" in run.stderr
    assert not out.exists()


@pytest.fixture()
def checkpoint(tmp_path):
    path = tmp_path / "model.ckpt.json"
    run = dlport(
        "train",
        "--data",
        "diabetes",
        "--optimizer",
        "adam",
        "--epochs",
        "5",
        "--checkpoint",
        str(path),
    )
    assert run.returncode == 0, run.stderr
    return path


def test_predict_writes_the_checkpoints_predictions(tmp_path, checkpoint):
    out = tmp_path / "pred.csv"
    run = dlport(
        "predict", "--checkpoint", str(checkpoint), "--data", "diabetes", "--out", str(out)
    )
    assert run.returncode == 0, run.stderr
    assert "r2" in run.stderr  # the data has the target column: metrics are shown
    from dlport.common.checkpoint import Checkpoint
    from dlport.common.data import load_dataset

    weights, bias = Checkpoint.read(checkpoint).model
    data = load_dataset("diabetes")
    got = np.loadtxt(out, skiprows=1)
    np.testing.assert_allclose(got, data.X @ weights + bias, rtol=1e-12, atol=1e-9)


def test_predict_picks_feature_columns_by_name(tmp_path, checkpoint):
    from dlport.common.data import load_dataset

    data = load_dataset("diabetes")
    names = list(reversed(data.feature_names))  # other order, no target column
    rows = [",".join(names)] + [",".join(repr(float(v)) for v in row[::-1]) for row in data.X[:5]]
    csv_path = tmp_path / "features.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    by_name = dlport("predict", "--checkpoint", str(checkpoint), "--data", str(csv_path))
    full = dlport("predict", "--checkpoint", str(checkpoint), "--data", "diabetes")
    assert by_name.returncode == 0, by_name.stderr
    got = np.array(by_name.stdout.splitlines()[1:], dtype=float)
    want = np.array(full.stdout.splitlines()[1:6], dtype=float)
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, checkpoint):
    half = tmp_path / "half.json"
    args = ["--data", "diabetes", "--optimizer", "adam", "--json", "-"]
    assert dlport("train", *args, "--epochs", "2", "--checkpoint", str(half)).returncode == 0
    resumed = dlport(
        "train", "--data", "diabetes", "--resume", str(half), "--epochs", "5", "--json", "-"
    )
    assert resumed.returncode == 0, resumed.stderr
    from dlport.common.checkpoint import Checkpoint

    weights, bias = Checkpoint.read(checkpoint).model
    result = json.loads(resumed.stdout)
    assert result["weights"] == weights.tolist() and result["bias"] == bias


CHECKPOINT_ERRORS = {
    "truncated": (
        ["predict", "--checkpoint", "{truncated}", "--data", "diabetes"],
        "truncated or corrupted",
    ),
    "missing-column": (
        ["predict", "--checkpoint", "{ckpt}", "--data", "{short_csv}"],
        "lacks the model's feature column",
    ),
    "feature-count": (
        ["predict", "--checkpoint", "{ckpt}", "--data", "synthetic:n=5,d=3"],
        "has 3 features but the model was trained on 10",
    ),
    "resume-other-framework": (
        ["train", "--data", "diabetes", "--resume", "{ckpt}", "--framework", "torch"],
        "resume it with --framework numpy",
    ),
    "resume-other-data": (
        ["train", "--data", "synthetic:n=442,d=10", "--resume", "{ckpt}"],
        "other data",
    ),
    "every-without-path": (
        ["train", "--data", "diabetes", "--checkpoint-every", "2"],
        "--checkpoint-every needs",
    ),
    "export-numpy": (
        ["export", "--checkpoint", "{ckpt}", "--framework", "numpy", "--out", "{out}"],
        "no native model format",
    ),
    "no-checkpoint": (
        ["predict", "--checkpoint", "{out}", "--data", "diabetes"],
        "checkpoint not found",
    ),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_ERRORS))
def test_checkpoint_misuse_is_one_line_exit_2(tmp_path, checkpoint, case):
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(checkpoint.read_bytes()[:100])
    short_csv = tmp_path / "short.csv"
    short_csv.write_text("age,sex\n1,2\n")
    out = tmp_path / "out.file"
    args, message = CHECKPOINT_ERRORS[case]
    paths = {"ckpt": checkpoint, "truncated": truncated, "short_csv": short_csv, "out": out}
    run = dlport(*[a.format(**paths) for a in args])
    assert_one_line_error(run, 2, message)
    assert not out.exists()


def test_unwritable_output_is_one_line_exit_2(tmp_path):
    run = dlport("train", "--data", "diabetes", "--epochs", "1", "--json", str(tmp_path))
    assert_one_line_error(run, 2, "cannot use")
