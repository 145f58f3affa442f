"""Data larger than memory: sizes, merged moments, the streamed batch order, Parquet row groups
as blocks, the streamed exact solver and its QR route, and the CLI's --max-memory."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_cli import assert_one_line_error, dlport

from dlport.common import feeds
from dlport.common.batching import stream_windows, streamed_order
from dlport.common.config import TrainConfig
from dlport.common.data import Dataset, load_dataset
from dlport.common.errors import DlportError
from dlport.common.standardize import Moments, Standardizer
from dlport.common.stream import format_size, parse_size, stream_arrays
from dlport.frameworks.numpy.trainer import NumpyTrainer


@pytest.mark.parametrize(
    ("text", "size"),
    [("512MB", 512_000_000), ("4gb", 4_000_000_000), ("1.5GiB", 1_610_612_736),
     ("100000", 100_000), ("2 KiB", 2048), ("36B", 36)],
)  # fmt: skip
def test_sizes_parse_and_print_back(text, size):
    assert parse_size(text) == size
    assert parse_size(format_size(size)) == pytest.approx(size, rel=5e-3)


@pytest.mark.parametrize("text", ["lots", "0MB", "-1GB", "12 parsecs", ""])
def test_a_size_that_is_not_one_is_refused(text):
    with pytest.raises(DlportError, match="is not a size; give e.g. 512MB"):
        parse_size(text)


def test_merged_moments_equal_the_whole_arrays():
    rng = np.random.default_rng(0)
    values = rng.normal(1e6, 3.0, size=(10_001, 3))  # a large mean: the naive sums would cancel
    merged = Moments(0, np.zeros(0), np.zeros(0))
    for start in range(0, len(values), 777):
        merged = merged.merge(Moments.of(values[start : start + 777]))
    assert merged.count == len(values)
    np.testing.assert_allclose(merged.mean, values.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(merged.std(), values.std(axis=0), rtol=1e-11)
    x = Standardizer.from_moments(merged, Moments.of(values[:, 0]))
    np.testing.assert_allclose(x.x_scale, Standardizer.fit(values, values[:, 0]).x_scale, 1e-11)


def test_the_streamed_order_is_a_pure_function_of_seed_epoch_and_layout():
    rows = (50, 50, 50, 20, 50, 7)
    windows = stream_windows(rows, 120, seed=4, epoch=2)
    again = stream_windows(rows, 120, seed=4, epoch=2)
    assert [w for w, _ in windows] == [w for w, _ in again]
    assert all((a == b).all() for (_, a), (_, b) in zip(windows, again, strict=True))
    blocks = [b for w, _ in windows for b in w]
    assert sorted(blocks) == list(range(len(rows)))  # every block once
    for w, perm in windows:
        held = sum(rows[b] for b in w)
        assert held <= 120 and sorted(perm.tolist()) == list(range(held))
    order = streamed_order(rows, 120, 4, 2)
    assert sorted(order.tolist()) == list(range(sum(rows)))
    assert not (order == streamed_order(rows, 120, 4, 3)).all()
    assert not (order == streamed_order(rows, 120, 5, 2)).all()
    # A block larger than the window is a window of its own.
    assert [w for w, _ in stream_windows((300, 10), 120, 0, 0)] in ([(0,), (1,)], [(1,), (0,)])


def test_a_streamed_run_is_the_in_memory_run_on_the_streamed_order(monkeypatch):
    data = load_dataset("synthetic:n=3000,d=5,seed=2")
    streamed = stream_arrays(data.X, data.y, data.feature_names, "y", data.source, 150_000)
    assert streamed.window_rows == 260 and len(streamed.blocks.block_rows) == 47
    config = TrainConfig(optimizer="adam", epochs=3, batch_size=50, standardize=False)
    got = NumpyTrainer().fit(streamed, config)
    layout = streamed.blocks.block_rows, streamed.window_rows
    monkeypatch.setattr(feeds, "epoch_order", lambda n, s, e, b: streamed_order(*layout, s, e))
    want = NumpyTrainer().fit(data, config)
    assert got.weights == want.weights and got.bias == want.bias  # bit for bit
    np.testing.assert_allclose(got.history["loss"], want.history["loss"], rtol=1e-14)
    assert got.metrics == pytest.approx(want.metrics, rel=1e-13)
    assert streamed.fingerprint() == data.fingerprint()


def parquet_file(path, data: Dataset, row_group_size: int):
    columns = dict(zip(data.feature_names, data.X.T, strict=True)) | {"y": data.y}
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return str(path)


def test_a_parquet_file_streams_a_row_group_at_a_time(tmp_path):
    data = load_dataset("synthetic:n=2000,d=4,seed=1")
    path = parquet_file(tmp_path / "d.parquet", data, row_group_size=100)
    streamed = load_dataset(path, max_memory="100KB")
    assert streamed.blocks.block_rows == (100,) * 20 and streamed.window_rows == 208
    assert streamed.fingerprint() == data.fingerprint()
    config = TrainConfig(optimizer="momentum", epochs=2, batch_size=64)
    from_arrays = stream_arrays(data.X, data.y, data.feature_names, "y", path, 100_000)
    from_arrays.blocks.__init__(data.X, data.y, 100)  # the file's layout: 20 blocks of 100
    got, want = NumpyTrainer().fit(streamed, config), NumpyTrainer().fit(from_arrays, config)
    assert got.weights == want.weights and got.history == want.history
    target = load_dataset(path, "x0", max_memory="100KB")
    assert target.feature_names == ("x1", "x2", "x3", "y") and target.target_name == "x0"


def test_a_folder_of_parts_streams_as_one_table(tmp_path):
    data = load_dataset("synthetic:n=600,d=3,seed=1")
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, start in enumerate(range(0, 600, 200)):
        part = Dataset.from_arrays(data.X[start : start + 200], data.y[start : start + 200])
        parquet_file(folder / f"part-{i}.parquet", part, row_group_size=50)
    streamed = load_dataset(str(folder), max_memory="60KB")
    assert len(streamed.blocks.block_rows) == 12 and streamed.n_samples == 600
    assert streamed.fingerprint() == Dataset.from_arrays(data.X, data.y).fingerprint()


def refusal(path, **kwargs) -> str:
    with pytest.raises(DlportError) as caught:
        NumpyTrainer().fit(load_dataset(path, max_memory="10KB", **kwargs), TrainConfig())
    return str(caught.value)


def test_bad_values_in_a_late_row_group_are_refused_with_their_row(tmp_path):
    x = np.arange(40.0)
    holes = pa.table({"a": pa.array([*x[:33], None, *x[34:]]), "y": x})
    pq.write_table(holes, tmp_path / "holes.parquet", row_group_size=10)
    assert refusal(tmp_path / "holes.parquet") == (
        f"{tmp_path / 'holes.parquet'}, column 'a': data row 34 is empty; drop or impute those rows"
    )
    nan = x.copy()
    nan[25] = np.nan
    pq.write_table(pa.table({"a": x, "y": nan}), tmp_path / "nan.parquet", row_group_size=10)
    assert refusal(tmp_path / "nan.parquet").endswith(
        "target contain NaN or inf (first at data row 26); drop or impute those rows"
    )
    huge = pa.table({"a": np.tile([1e300, -1e300], 20), "y": x})
    pq.write_table(huge, tmp_path / "huge.parquet", row_group_size=10)
    assert "column 'a' overflows float64 arithmetic" in refusal(tmp_path / "huge.parquet")
    text = pa.table({"a": x, "s": ["x"] * 40, "y": x})
    pq.write_table(text, tmp_path / "text.parquet", row_group_size=10)
    assert "column 's': type string is not a number" in refusal(tmp_path / "text.parquet")
    assert refusal(tmp_path / "nan.parquet", target="z").startswith("target column 'z' not in")


def test_streaming_refuses_full_batch_and_a_batch_over_the_window():
    data = load_dataset("synthetic:n=4000,d=8", max_memory="100KB")
    with pytest.raises(DlportError, match="streaming trains in minibatches; give --batch-size"):
        NumpyTrainer().fit(data, TrainConfig(batch_size=None))
    with pytest.raises(DlportError, match="--batch-size 500 does not fit --max-memory 100KB"):
        NumpyTrainer().fit(data, TrainConfig(batch_size=500))


def ill_conditioned(n=3000):
    """Powers of t (no standardization): condition ~1e6, past the normal equations' limit."""
    t = np.linspace(0.0, 2.0, n)
    X = np.column_stack([t, t**2, t**3, t**4, t**5])
    y = X @ np.array([1.0, -2.0, 0.5, 0.25, -0.1]) + 3.0 + np.sin(40 * t) * 1e-3
    return Dataset.from_arrays(X, y)


def test_ill_conditioned_data_takes_the_qr_route_streamed_or_not(monkeypatch):
    data, config = ill_conditioned(), TrainConfig(solver="exact", standardize=False)
    trainer = NumpyTrainer()
    calls = []
    monkeypatch.setattr(trainer, "_solve_gram", lambda A, b, d: calls.append(1))
    design = np.column_stack([data.X, np.ones(data.n_samples)])
    lstsq = np.linalg.lstsq(design, data.y, rcond=None)[0]
    in_memory = trainer.fit(data, config)
    streamed = stream_arrays(data.X, data.y, data.feature_names, "y", "t", 100_000)
    through_qr = trainer.fit(streamed, config)
    assert calls == []  # neither used the normal equations
    for got in (in_memory, through_qr):
        np.testing.assert_allclose(np.append(got.weights, got.bias), lstsq, rtol=1e-8)


def test_well_conditioned_data_takes_the_normal_equations(monkeypatch):
    data, trainer = load_dataset("synthetic:n=500,d=4,seed=9"), NumpyTrainer()
    monkeypatch.setattr(
        trainer, "_solve_exact", lambda *a: pytest.fail("the QR route ran on easy data")
    )
    got = trainer.fit(data, TrainConfig(solver="exact"))
    design = np.column_stack([data.X, np.ones(data.n_samples)])
    lstsq = np.linalg.lstsq(design, data.y, rcond=None)[0]
    np.testing.assert_allclose(np.append(got.weights, got.bias), lstsq, rtol=1e-12)


def test_streamed_dependent_columns_are_refused_by_name():
    a = np.linspace(0, 1, 400)
    data = Dataset.from_arrays(np.column_stack([a, 2 * a, np.cos(a)]), np.sin(a))
    streamed = stream_arrays(data.X, data.y, ["a", "twice", "c"], "y", "d", 20_000)
    with pytest.raises(DlportError, match=r"\['a', 'twice'\] are \(nearly\) linearly dependent"):
        NumpyTrainer().fit(streamed, TrainConfig(solver="exact", standardize=False))


def test_cli_trains_streamed_and_says_so(tmp_path):
    run = dlport(
        "train", "--data", "synthetic:n=4096,d=8", "--max-memory", "200KB", "--epochs", "2",
        "--json", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "streamed (past --max-memory 200KB): 231 rows at a time" in run.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["data"]["streamed"] == {"max_memory": 200000, "window_rows": 231, "blocks": 72}
    bad = dlport("train", "--data", "diabetes", "--max-memory", "lots")
    assert_one_line_error(bad, 2, "--max-memory 'lots' is not a size; give e.g. 512MB")
