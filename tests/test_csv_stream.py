"""A CSV past --max-memory, streamed as byte ranges of whole lines: the same values, batches and
weights as the same data in memory, and refusals that name the file's own lines and rows."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from test_cli import assert_one_line_error, dlport

from dlport.common.config import TrainConfig
from dlport.common.csv_blocks import CsvBlocks, estimated_shape
from dlport.common.data import Dataset, load_dataset
from dlport.common.errors import DlportError
from dlport.common.stream import StreamedDataset
from dlport.frameworks.numpy.trainer import NumpyTrainer

BUDGET = "100KB"


def write_csv(path, data: Dataset, blank_lines_at=()) -> str:
    lines = [",".join([*data.feature_names, data.target_name])]
    for i, (row, target) in enumerate(zip(data.X, data.y, strict=True)):
        if i in blank_lines_at:
            lines.append("")
        lines.append(",".join(repr(float(v)) for v in [*row, target]))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


class LaidOut:
    """Arrays in memory cut into the given block sizes: a layout to compare a file's with."""

    def __init__(self, X, y, block_rows):
        self.X, self.y, self.block_rows = X, y, tuple(block_rows)
        self.first = np.concatenate([[0], np.cumsum(block_rows)])

    def read(self, block):
        rows = slice(self.first[block], self.first[block + 1])
        return self.X[rows], self.y[rows]

    def read_target(self, block):
        return self.read(block)[1]


@pytest.fixture(scope="module")
def csv_data(tmp_path_factory):
    data = load_dataset("synthetic:n=3000,d=5,seed=4")
    path = write_csv(tmp_path_factory.mktemp("csv") / "d.csv", data, blank_lines_at=(7, 2000))
    return data, path


def test_a_csv_past_the_budget_streams_the_same_values_in_whole_lines(csv_data):
    data, path = csv_data
    streamed = load_dataset(path, max_memory=BUDGET)
    assert isinstance(streamed, StreamedDataset) and isinstance(streamed.blocks, CsvBlocks)
    rows = streamed.blocks.block_rows
    assert len(rows) > 4 and sum(rows) == 3000 and max(rows) <= streamed.window_rows
    parts = [streamed.blocks.read(b) for b in range(len(rows))]
    assert np.array_equal(np.concatenate([X for X, _ in parts]), data.X)
    assert np.array_equal(np.concatenate([y for _, y in parts]), data.y)
    assert streamed.fingerprint() == data.fingerprint()
    assert streamed.feature_names == data.feature_names and streamed.source == path
    assert isinstance(load_dataset(path), Dataset)  # within the default budget: in memory


def test_a_streamed_csv_trains_as_its_layout_in_memory(csv_data):
    data, path = csv_data
    streamed = load_dataset(path, max_memory=BUDGET)
    same = StreamedDataset(
        LaidOut(data.X, data.y, streamed.blocks.block_rows),
        streamed.window_rows,
        data.feature_names,
        "y",
        path,
        streamed.max_memory,
    )
    config = TrainConfig(optimizer="adam", epochs=2, batch_size=64)
    got, want = NumpyTrainer().fit(streamed, config), NumpyTrainer().fit(same, config)
    assert got.weights == want.weights and got.history == want.history
    exact = TrainConfig(solver="exact")
    streamed_exact, in_memory = NumpyTrainer().fit(streamed, exact), NumpyTrainer().fit(data, exact)
    np.testing.assert_allclose(streamed_exact.weights, in_memory.weights, rtol=1e-12)


def test_the_estimate_that_decides_streaming_is_near_the_truth(csv_data):
    rows, columns = estimated_shape(Path(csv_data[1]))
    assert columns == 6 and abs(rows - 3000) < 300


def test_ranges_that_hold_more_rows_than_the_sample_promised_are_split(tmp_path, monkeypatch):
    from dlport.common import csv_blocks

    monkeypatch.setattr(csv_blocks, "_SAMPLE_BYTES", 3000)  # sees only the long lines
    long = [
        f"{i}.000000000000000000000000001,{i}.5000000000000000000000000001,{i}" for i in range(60)
    ]
    short = [f"{i % 10},{i % 3},{i % 7}" for i in range(3000)]
    path = tmp_path / "d.csv"
    path.write_text("\n".join(["a,b,y", *long, *short]) + "\n")
    streamed = load_dataset(str(path), max_memory="20KB")
    assert max(streamed.blocks.block_rows) <= streamed.window_rows // 2
    assert streamed.fingerprint() == load_dataset(str(path)).fingerprint()


def test_cells_only_dlports_parser_reads_give_the_in_memory_values(tmp_path):
    """Python's float() reads "1_0" where pyarrow refuses it: a range with one is read by
    dlport's parser, for all of it (a feature's) or for its target alone (the target's)."""
    lines = ["a,b,y", *(f"{i % 10},{i % 3},{i % 7}" for i in range(3000))]
    lines[100], lines[2500] = "1_0,2,3", "4,5,6_0"
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines) + "\n")
    streamed, whole = load_dataset(str(path), max_memory="20KB"), load_dataset(str(path))
    assert len(streamed.blocks.block_rows) > 2 and whole.X[99, 0] == 10 and whole.y[2499] == 60
    assert streamed.fingerprint() == whole.fingerprint()


def refused(tmp_path, lines: list[str], name="bad.csv", **kwargs) -> str:
    path = tmp_path / name
    text = "\n".join(lines) + "\n"
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    with pytest.raises(DlportError) as caught:
        data = load_dataset(str(path), max_memory="2KB", **kwargs)
        NumpyTrainer().fit(data, TrainConfig(batch_size=4))
    return str(caught.value).replace(str(path), "F")


def test_bad_cells_far_down_are_named_by_their_line_in_the_file(tmp_path):
    good = [f"{i},{i % 7}.5,{2 * i}" for i in range(400)]
    head = ["", "a,b,y"]  # a blank line above the header: the header is line 2
    text = refused(tmp_path, [*head, *good[:300], "", "1,oops,3", *good[300:]])
    assert text == "F line 304, column 'b': 'oops' is not a number; dlport needs numeric columns"
    ragged = refused(tmp_path, [*head, *good[:350], "1,2", *good[350:]])
    assert ragged == "F line 353 has 2 fields, the header has 3; fix the ragged row"
    nan = refused(tmp_path, [*head, *good[:390], "1,nan,3", *good[390:]])
    assert nan.startswith("F: features contain NaN or inf (first at data row 391)")
    huge = refused(tmp_path, [*head, *good, "1e300,1,1"])
    assert "column 'a' overflows float64 arithmetic" in huge
    assert refused(tmp_path, ["a,b,y", *good], target="z").startswith("target column 'z' not in")
    assert refused(tmp_path, ["a,a,y", *good]).startswith("F: duplicate column name(s) 'a'")


def test_a_gzip_csv_past_the_budget_is_read_whole_then_streamed(tmp_path, monkeypatch):
    from dlport.common import data as data_module

    data = load_dataset("synthetic:n=500,d=2,seed=1")
    plain = Path(write_csv(tmp_path / "d.csv", data))
    packed = tmp_path / "d.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    streamed = load_dataset(str(packed), max_memory="10KB")  # no ranges in a gzip stream
    assert type(streamed.blocks).__name__ == "ArrayBlocks"
    assert streamed.fingerprint() == data.fingerprint()
    monkeypatch.setattr(data_module, "available_memory", lambda: 1000)
    text = refused(tmp_path, plain.read_text().splitlines(), name="big.csv.gz")
    assert text.endswith("; decompress it (gunzip): a plain CSV past --max-memory streams")


def test_cli_trains_a_streamed_csv_and_says_so(tmp_path, csv_data):
    data, path = csv_data
    run = dlport(
        "train", "--data", path, "--max-memory", BUDGET, "--epochs", "1", "--batch-size", "64",
        "--json", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "streamed (past --max-memory 100KB)" in run.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["data"]["n_samples"] == 3000 and result["data"]["streamed"]["blocks"] > 4
    bad = tmp_path / "bad.csv"
    bad.write_text("a,y\n" + "1,2\n" * 2000 + "1,x\n")
    refused = dlport("train", "--data", str(bad), "--max-memory", "2KB", "--batch-size", "8")
    assert_one_line_error(refused, 2, "line 2002, column 'y': 'x' is not a number")


def test_compare_hands_its_children_the_streamed_csv_itself(tmp_path, csv_data):
    from dlport.compare.run import _data_for_children

    data, path = csv_data
    streamed = load_dataset(path, max_memory=BUDGET)
    args = _data_for_children(streamed, tmp_path)
    assert args == [f"--data={Path(path).absolute()}", "--target=y", "--max-memory=100000"]
    again = load_dataset(path, "y", max_memory=100_000)  # what a child loads: the same blocks
    assert again.blocks.block_rows == streamed.blocks.block_rows
