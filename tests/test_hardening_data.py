"""Hostile or unlucky input on the data side: special output files, ambiguous data specs,
duplicate columns, data too large for memory or for float64, predict over its own input."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import threading
import zipfile
from importlib import resources

import numpy as np
import pytest
from test_cli import assert_one_line_error, dlport

from dlport.common import data as data_module
from dlport.common.atomic import write_bytes_atomic
from dlport.common.data import load_dataset, load_features
from dlport.common.errors import DlportError
from dlport.common.metrics import regression_metrics

# -- 1. atomic writes: devices, FIFOs, symlinks, modes ----------------------------------------


@pytest.fixture()
def dev_nodes():
    """A regression here replaces /dev nodes for the whole machine (we run as root): restore."""
    yield
    for path, minor in (("/dev/null", 3), ("/dev/full", 7)):
        if not stat.S_ISCHR(os.stat(path).st_mode):
            os.remove(path)
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    if not os.path.islink("/dev/stdout"):
        os.remove("/dev/stdout")
        os.symlink("/proc/self/fd/1", "/dev/stdout")


def test_json_to_dev_null_leaves_the_device_in_place(dev_nodes):
    run = dlport("train", "--data", "diabetes", "--solver", "exact", "--json", "/dev/null")
    assert run.returncode == 0, run.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_json_to_dev_full_is_one_line_naming_the_path(dev_nodes):
    run = dlport("train", "--data", "diabetes", "--solver", "exact", "--json", "/dev/full")
    assert_one_line_error(run, 2, "cannot use /dev/full (No space left on device)")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


@pytest.mark.parametrize("json_path", ["/dev/stdout", "{out}"])
def test_json_to_our_own_stdout_keeps_the_output_in_order(tmp_path, dev_nodes, json_path):
    """`--json /dev/stdout > out`, or `--json out > out`: replacing the file would lose what
    the shell's descriptor writes around the result."""
    out = tmp_path / "out.txt"
    json_path = json_path.format(out=out)
    with open(out, "wb") as stdout:
        args = ["--data", "diabetes", "--solver", "exact", "--json", json_path]
        run = subprocess.run([sys.executable, "-m", "dlport", "train", *args], stdout=stdout)
    assert run.returncode == 0
    # files are written before the summary (a reader that stops early loses no file)
    start, _, rest = out.read_text().partition("{")
    result, _, summary = ("{" + rest).rpartition("}\n")
    assert start.startswith("data diabetes: 442 rows") and json.loads(result + "}")["weights"]
    assert "bmi" in summary and summary.endswith(f"\nresult written to {json_path}\n")
    assert os.path.islink("/dev/stdout")


def test_write_goes_through_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_bytes_atomic(fifo, b"through the pipe")
    reader.join(timeout=10)
    assert received == [b"through the pipe"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_write_replaces_a_symlinks_target_not_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "result.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_bytes_atomic(link, b"new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["link.json", "real", "result.json"]


def test_write_keeps_an_existing_files_mode(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("old")
    path.chmod(0o640)
    write_bytes_atomic(path, b"new")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640 and path.read_bytes() == b"new"


# -- 2. which data a spec names -----------------------------------------------------------------


def test_synthetic_needs_its_colon(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DlportError, match="data file not found: synthetic_prices.csv"):
        load_dataset("synthetic_prices.csv")
    assert load_dataset("synthetic").source == "synthetic:n=1000,d=8,noise=0.1,seed=0"
    run = dlport("train", "--data", "synthetic_prices.csv", cwd=tmp_path)
    assert_one_line_error(run, 2, "data file not found: synthetic_prices.csv")


def test_an_existing_file_wins_over_a_bundled_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "diabetes").write_text("a,b\n1,2\n3,5\n")
    data = load_dataset("diabetes")
    assert data.X.tolist() == [[1.0], [3.0]] and data.target_name == "b"
    assert data.source == "./diabetes"  # recorded apart from the bundled set


# -- 3. column names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("a,y,y", "duplicate column name(s) 'y'"),
        ("a,a,y", "duplicate column name(s) 'a'"),
        ("a,,y", "column 2 has no name"),
    ],
)
def test_ambiguous_headers_are_refused_for_training_and_predict(tmp_path, header, message):
    path = tmp_path / "d.csv"
    path.write_text(f"{header}\n1,2,3\n4,5,7\n")
    with pytest.raises(DlportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(str(path))
    with pytest.raises(DlportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_features(str(path), ["a"], "y")
    assert_one_line_error(dlport("train", "--data", str(path)), 2, message)


def test_duplicate_npz_feature_names_are_refused(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((2, 2)), y=np.ones(2), feature_names=np.array(["a", "a"]))
    with pytest.raises(DlportError, match="duplicate column name"):
        load_dataset(str(path))


# -- 4. data too large for memory ---------------------------------------------------------------


def test_huge_synthetic_is_refused_before_allocating():
    run = dlport("train", "--data", "synthetic:n=1000000000000,d=1000")
    assert_one_line_error(run, 2, "needs 8000000.0 GB of memory (X alone) but ")
    assert "GB is available; use a smaller n or d" in run.stderr


def _npz(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_npz_header_claiming_a_huge_array_is_refused(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
    )
    path = tmp_path / "lies.npz"
    path.write_bytes(_npz({"X.npy": header.getvalue(), "y.npy": _npy(np.ones(10**6))}))
    with pytest.raises(DlportError, match=r"X\.npy is truncated or corrupted"):
        load_dataset(str(path))
    assert_one_line_error(dlport("train", "--data", str(path)), 2, "truncated or corrupted")


def test_npz_inflating_past_memory_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, X=np.zeros((2000, 1000)), y=np.zeros(2000))
    assert path.stat().st_size < 100_000  # 16 MB once inflated
    monkeypatch.setattr(data_module, "available_memory", lambda: 1_000_000)
    with pytest.raises(DlportError, match="needs 16.0 MB of memory .* but 1.0 MB is available"):
        load_dataset(str(path))


def test_npz_object_arrays_are_refused(tmp_path):
    path = tmp_path / "objects.npz"
    path.write_bytes(
        _npz({"X.npy": _npy(np.array([[1]], dtype=object)), "y.npy": _npy(np.ones(1))})
    )
    with pytest.raises(DlportError, match="X must be a numeric array, got object"):
        load_dataset(str(path))


def test_csv_larger_than_memory_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n" + "1,2\n" * 1000)
    monkeypatch.setattr(data_module, "available_memory", lambda: 1000)
    with pytest.raises(DlportError, match="needs .* of memory"):
        load_dataset(str(path), max_memory="1GB")
    assert load_dataset(str(path)).n_samples == 1000  # past half of it: streamed


# -- 5. values whose arithmetic overflows float64 -----------------------------------------------


@pytest.mark.parametrize("column", ["a", "y"])
def test_values_overflowing_float64_arithmetic_are_refused(tmp_path, column):
    big = {"a": "1e308,1\n-1e308,2\n3,0\n", "y": "1,1e308\n2,-1e308\n3,0\n"}[column]
    path = tmp_path / "big.csv"
    path.write_text("a,y\n" + big)
    out = tmp_path / "r.json"
    run = dlport("train", "--data", str(path), "--solver", "exact", "--json", str(out))
    assert_one_line_error(run, 2, f"column {column!r} overflows float64 arithmetic")
    assert "rescale the data" in run.stderr and not out.exists()


def test_large_but_safe_values_still_train(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("a,y\n1,1e150\n2,-1e150\n3,0\n")
    run = dlport("train", "--data", str(path), "--solver", "exact", "--json", "-")
    assert run.returncode == 0, run.stderr
    assert np.isfinite(json.loads(run.stdout)["metrics"]["mse"])


# -- 6. predict --out over its own input ------------------------------------------------------


@pytest.fixture()
def bmi_model(tmp_path):
    """numpy, exact, on diabetes with --target bmi: its features are 9 columns + progression."""
    ckpt, result = tmp_path / "bmi.ckpt.json", tmp_path / "bmi.json"
    args = ["--data", "diabetes", "--target", "bmi", "--solver", "exact"]
    run = dlport("train", *args, "--checkpoint", str(ckpt), "--json", str(result))
    assert run.returncode == 0, run.stderr
    return ckpt, json.loads(result.read_text())


@pytest.mark.parametrize("victim", ["data", "checkpoint", "link"])
def test_predict_refuses_to_overwrite_its_input(tmp_path, bmi_model, victim):
    ckpt, _ = bmi_model
    data = tmp_path / "d.csv"
    data.write_bytes(resources.files("dlport.datasets").joinpath("diabetes.csv").read_bytes())
    (tmp_path / "link").symlink_to(data)
    out = {"data": data, "checkpoint": ckpt, "link": tmp_path / "link"}[victim]
    before = data.read_bytes(), ckpt.read_bytes()
    run = dlport("predict", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out))
    which = "--checkpoint" if victim == "checkpoint" else "--data"
    assert_one_line_error(run, 2, f"--out {out} is the {which} file")
    assert (data.read_bytes(), ckpt.read_bytes()) == before


# -- 7. predict matches named columns by name ---------------------------------------------------


def test_predict_on_bundled_data_matches_columns_by_name(bmi_model):
    ckpt, result = bmi_model
    run = dlport("predict", "--checkpoint", str(ckpt), "--data", "diabetes")
    assert run.returncode == 0, run.stderr
    diabetes = load_dataset("diabetes", target="bmi")
    expected = diabetes.X @ np.array(result["weights"]) + result["bias"]
    got = np.array(run.stdout.splitlines()[1:], dtype=float)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    metrics = regression_metrics(diabetes.y, got)
    assert run.stderr.strip() == "  ".join(f"{k} {v:.6g}" for k, v in metrics.items())
    assert metrics["r2"] == pytest.approx(result["metrics"]["r2"], rel=1e-9)


def test_predict_on_named_npz_matches_columns_by_name(tmp_path, bmi_model):
    ckpt, result = bmi_model
    diabetes = load_dataset("diabetes")  # target progression: bmi is a feature in this file
    path = tmp_path / "d.npz"
    order = list(reversed(range(diabetes.n_features)))
    np.savez(
        path,
        X=diabetes.X[:, order],
        y=diabetes.y,
        feature_names=np.array(diabetes.feature_names)[order],
        target_name=np.array("progression"),
    )
    X, y = load_features(str(path), result["data"]["feature_names"], "bmi")
    np.testing.assert_array_equal(X, load_dataset("diabetes", target="bmi").X)
    np.testing.assert_array_equal(y, diabetes.X[:, diabetes.feature_names.index("bmi")])


def test_predict_on_unnamed_npz_matches_by_count(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.arange(6.0).reshape(3, 2))
    X, y = load_features(str(path), ["p", "q"], "t")
    assert X.tolist() == [[0, 1], [2, 3], [4, 5]] and y is None
    with pytest.raises(DlportError, match="has 2 features but the model was trained on 3"):
        load_features(str(path), ["p", "q", "r"], "t")
