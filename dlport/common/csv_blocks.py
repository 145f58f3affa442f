"""A CSV file larger than memory, read as byte ranges of whole lines: the blocks of a streamed
dataset (docs/design.md, "Data larger than memory").

A range is parsed by ``pyarrow.csv`` each time it is read; where pyarrow refuses it, dlport's
own parser names the line and cell, with the line numbers of the whole file.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dlport.common.arrow import float64_columns
from dlport.common.errors import DlportError
from dlport.common.stream import ValuesPass, check_finite

# Bytes read to estimate a file's rows (its first lines' mean length).
_SAMPLE_BYTES = 1 << 20
# The longest a range gets: pyarrow parses it threaded, in its own 1 MB blocks.
_MAX_RANGE_BYTES = 1 << 26


def estimated_shape(path: Path) -> tuple[int, int] | None:
    """(rows, columns) of a plain CSV guessed from its size and its first lines (what decides
    whether it is streamed); None where the file gives no header to count (the loader then
    says what is wrong with it)."""
    try:
        head = _Head.read(path)
    except (OSError, DlportError):
        return None
    rows = (path.stat().st_size - head.body) / _line_bytes(head.sample[head.body :])
    return round(rows), len(head.names)


class _Head(NamedTuple):
    sample: bytes  # the file's first MB
    header: bytes  # its header line
    body: int  # the offset just past the header line
    names: list[str]  # the header's names

    @classmethod
    def read(cls, path: Path) -> _Head:
        from dlport.common.data import csv_text

        with open(path, "rb") as fh:
            sample = fh.read(_SAMPLE_BYTES)
        first = _first_line(sample)
        if first is None:
            raise DlportError(f"{path} has no header row in its first MB; give a CSV with one")
        try:
            names = next(csv.reader([csv_text(first[0], str(path))]))
        except csv.Error as exc:
            raise DlportError(f"{path} is not valid CSV ({exc})") from None
        return cls(sample, first[0], first[1], [name.strip() for name in names])


def _line_bytes(body: bytes) -> float:
    """The mean length of the lines in a sample of them (at least one byte)."""
    lines = max(1, body.count(b"\n") + (not body.endswith(b"\n")))
    return max(1.0, len(body) / lines)


def _first_line(raw: bytes) -> tuple[bytes, int] | None:
    """The first line with text on it, and the offset just past it."""
    start = 0
    while start < len(raw):
        end = raw.find(b"\n", start) + 1 or len(raw)
        if raw[start:end].strip(b" \t\r\n,\xef\xbb\xbf"):
            return raw[start:end], end
        start = end
    return None


class CsvBlocks:
    """The CSV's data lines cut into byte ranges of whole lines. Construction parses every range
    once (checking every cell, counting its rows, and collecting the moments' ``ValuesPass``);
    each read parses its range again."""

    def __init__(self, path: Path, target: str | None, max_rows: int):
        """``max_rows``: the most rows a range may hold. Ranges are sized by the first MB's
        mean line length to hold about half that; one that holds more (shorter lines further
        down) is split in two at a newline and parsed again."""
        from dlport.common.data import _checked_names, _target_column

        self.path, self.source = path, str(path)
        head = _Head.read(path)
        self.header = head.header  # put before a range that dlport's parser reads
        self.names = _checked_names(head.names, self.source)
        self.target_name, self.target = _target_column(self.names, self.source, target)
        self.features = [j for j in range(len(self.names)) if j != self.target]
        self.feature_names = [self.names[j] for j in self.features]
        self.ranges, rows, first_lines, total = [], [], [], 0
        self.values_pass = ValuesPass()  # the moments' pass, made as the rows are counted
        line = 1 + head.sample[: head.body].count(b"\n")  # the first data line's number
        mean_line = _line_bytes(head.sample[head.body :])
        range_bytes = min(int(max_rows / 2 * mean_line), _MAX_RANGE_BYTES)
        pending = list(_line_ranges(path, head.body, range_bytes))[::-1]
        while pending:
            start, end = pending.pop()
            raw = self._bytes(start, end)
            parsed = self._parse(raw, line, first_row=total)
            count = len(parsed[1])
            if count > max_rows:  # lines shorter than the sample's: halve the range
                middle = raw.find(b"\n", len(raw) // 2) + 1
                middle = middle if 0 < middle < len(raw) else raw.find(b"\n") + 1
                pending += [(start + middle, end), (start, start + middle)]
                continue
            if count:
                self.values_pass.add(*parsed)
                self.ranges.append((start, end))
                rows.append(count)
                first_lines.append(line)
                total += count
            line += raw.count(b"\n")
        if not rows:
            raise DlportError(f"{path} has a header but no data rows")
        self.block_rows, self.first_lines = tuple(rows), first_lines
        self.first_row = np.concatenate([[0], np.cumsum(rows)])

    def _bytes(self, start: int, end: int) -> bytes:
        with open(self.path, "rb") as fh:
            fh.seek(start)
            return fh.read(end - start)

    def _parse(self, raw: bytes, line: int, first_row: int) -> tuple[np.ndarray, np.ndarray]:
        """The range's X and y (float64, checked finite); ``line``: its first line's number
        in the file, ``first_row``: its first data row's."""
        table = self._arrow_table(raw)
        if table is not None:
            X, y = float64_columns(table, self.features), float64_columns(table, [self.target])
        elif not raw.strip(b" \t\r\n,"):  # blank lines only, which both parsers skip
            return np.empty((0, len(self.features))), np.empty(0)
        else:  # dlport's parser: exact about what pyarrow refused, or slower where it differs
            from dlport.common.data import _parse_csv

            values = _parse_csv(self.header + raw, self.source, line_offset=line - 2)[1]
            X, y = np.ascontiguousarray(values[:, self.features]), values[:, [self.target]]
        return check_finite(self.source, first_row, X, np.ascontiguousarray(y[:, 0]))

    def _arrow_table(self, raw: bytes, columns: list[str] | None = None):
        """The range parsed by pyarrow, its columns (all, or these) float64; None if pyarrow
        refuses it or finds an empty cell."""
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        columns = columns or self.names
        try:
            table = pa_csv.read_csv(
                pa.BufferReader(raw),
                read_options=pa_csv.ReadOptions(column_names=self.names),
                convert_options=pa_csv.ConvertOptions(
                    column_types=dict.fromkeys(columns, pa.float64()), include_columns=columns
                ),
            )
        except (pa.ArrowException, ValueError):
            return None
        return None if any(column.null_count for column in table.columns) else table

    def read(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        raw = self._bytes(*self.ranges[block])
        return self._parse(raw, self.first_lines[block], int(self.first_row[block]))

    def read_target(self, block: int) -> np.ndarray:
        """The range's y, converting no other column where pyarrow reads it."""
        raw, first = self._bytes(*self.ranges[block]), int(self.first_row[block])
        table = self._arrow_table(raw, [self.target_name])
        if table is None:  # the bytes already read, parsed whole
            return self._parse(raw, self.first_lines[block], first)[1]
        y = float64_columns(table)[:, 0]
        return check_finite(self.source, first, np.empty((len(y), 0)), y)[1]


def _line_ranges(path: Path, start: int, range_bytes: int):
    """(start, end) byte ranges from ``start`` to the end of the file: each ends just past the
    first newline at or after its ``range_bytes``-th byte (or at the end of the file)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        while start < size:
            end = _past_newline(fh, start + max(1, range_bytes) - 1, size)
            yield start, end
            start = end


def _past_newline(fh, at: int, size: int) -> int:
    """The offset just past the first newline at or after ``at``; ``size`` if none."""
    fh.seek(at)
    while at < size:
        chunk = fh.read(1 << 16)
        found = chunk.find(b"\n")
        if found >= 0:
            return at + found + 1
        if not chunk:
            break
        at += len(chunk)
    return size
