"""Columnar input through pyarrow: Parquet (a file, or a directory of part files as Spark and
pandas write them), Feather / Arrow IPC files, and in-memory pyarrow Tables or pandas DataFrames.

pyarrow is imported when such data is read, never by ``import dlport``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlport.common.errors import DlportError

PARQUET_SUFFIXES = (".parquet", ".pq")
IPC_SUFFIXES = (".feather", ".arrow")


def is_arrow_path(path: Path) -> bool:
    """A Parquet or Feather/Arrow file, or a directory of Parquet part files."""
    suffix = path.suffix.lower()
    if path.is_dir():
        return suffix in PARQUET_SUFFIXES or any(path.glob("*.parquet"))
    return path.is_file() and suffix in PARQUET_SUFFIXES + IPC_SUFFIXES


def _pyarrow():
    try:
        import pyarrow
    except ImportError:
        raise DlportError(
            "reading Parquet, Feather or Arrow data needs pyarrow; pip install pyarrow"
        ) from None
    return pyarrow


def read_table(path: Path):
    """The file (or directory of part files) as one pyarrow Table."""
    pa = _pyarrow()
    kind = "Feather/Arrow" if path.suffix.lower() in IPC_SUFFIXES else "Parquet"
    try:
        if kind == "Parquet":
            import pyarrow.parquet as pq

            # A file read as itself, not as a dataset: duplicate column names reach our check.
            return pq.read_table(path) if path.is_dir() else pq.ParquetFile(path).read()
        import pyarrow.feather as feather

        return feather.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DlportError(f"cannot read {path} as {kind} ({detail})") from None


def as_table(data):
    """A pyarrow Table from a Table or a pandas DataFrame (its index is not a column)."""
    pa = _pyarrow()
    if isinstance(data, pa.Table):
        return data
    if type(data).__name__ == "DataFrame" and hasattr(data, "columns"):
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise DlportError(f"cannot read the DataFrame ({exc})") from None
    raise DlportError(
        f"cannot load a {type(data).__name__}; give a path, a pandas DataFrame or a pyarrow Table"
    )


def table_values(table, source: str, check_names) -> tuple[list[str], np.ndarray]:
    """Column names and float64 values, every column numeric and complete, like a CSV's."""
    return checked_names(table, source, check_names), float64_columns(table)


def checked_names(table, source: str, check_names) -> list[str]:
    """The table's column names, once every column is checked numeric and complete."""
    names = check_names([str(name) for name in table.column_names], source)
    if table.num_rows == 0:
        raise DlportError(f"{source} has columns but no rows")
    check_numeric(source, names, [column.type for column in table.columns])
    check_complete(source, names, table)
    return names


def check_complete(source: str, names: list[str], table, first_row: int = 0) -> None:
    """No empty cell: a null names its column and its data row (``first_row``: the table's
    first row's number in the whole file)."""
    for name, column in zip(names, table.columns, strict=True):
        if column.null_count:
            nulls = column.is_null().to_numpy(zero_copy_only=False)
            row = first_row + int(np.flatnonzero(nulls)[0])
            raise DlportError(
                f"{source}, column {name!r}: data row {row + 1} is empty; drop or impute those rows"
            )


def check_numeric(source: str, names: list[str], types) -> None:
    """Every column an integer, float or boolean type: dlport needs numbers."""
    pa = _pyarrow()
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)
    for name, kind in zip(names, types, strict=True):
        if not any(is_kind(kind) for is_kind in numeric):
            raise DlportError(
                f"{source}, column {name!r}: type {kind} is not a number; "
                "dlport needs numeric columns"
            )


def float64_columns(table, columns: list[int] | None = None) -> np.ndarray:
    """The table's columns (all, or these) as one C-ordered (rows, columns) float64 array.

    Each record batch's columns written into place a tile of rows at a time: the tile's rows
    stay in cache across its columns' strided writes, and no buffer is allocated per batch
    (a fresh buffer per batch cost 7x the copy itself on a 1 GB CSV's 5M x 11 values).
    """
    columns = list(range(table.num_columns)) if columns is None else columns
    values = np.empty((table.num_rows, len(columns)), dtype=np.float64)
    first = 0
    for batch in table.to_batches():
        arrays = [batch.column(j).to_numpy(zero_copy_only=False) for j in columns]
        for start in range(0, batch.num_rows, _TILE_ROWS):
            end = min(start + _TILE_ROWS, batch.num_rows)
            tile = values[first + start : first + end]
            for k, array in enumerate(arrays):
                tile[:, k] = array[start:end]
        first += batch.num_rows
    return values


_TILE_ROWS = 8192


def csv_table(source):
    """A plainly numeric CSV (a path, plain or .gz, or a pyarrow buffer) parsed by
    ``pyarrow.csv``, threaded, in 16 MB blocks (a third faster than its 1 MB default on a
    1 GB file), its column names stripped; None for anything else (text, empty cells, ragged
    rows, no rows, no pyarrow), which dlport's own parser then reads or refuses with the exact
    line and cell."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
    except ImportError:
        return None
    # Integers and floats only: pyarrow also reads true/false as numbers, which float() refuses.
    plain = (pa.types.is_integer, pa.types.is_floating)
    try:
        table = pa_csv.read_csv(source, read_options=pa_csv.ReadOptions(block_size=1 << 24))
        names = [name.strip() for name in table.column_names]  # may raise: not UTF-8
    except (pa.ArrowException, ValueError, OSError):
        return None
    if table.num_rows == 0 or any(
        column.null_count or not any(is_kind(column.type) for is_kind in plain)
        for column in table.columns
    ):
        return None
    return table.rename_columns(names)


def csv_values(raw: bytes) -> tuple[list[str], np.ndarray] | None:
    """``csv_table`` of a CSV's bytes, as its header and float64 values."""
    try:
        import pyarrow as pa
    except ImportError:
        return None
    start = 3 if raw.startswith(b"\xef\xbb\xbf") else 0  # the UTF-8 BOM "utf-8-sig" drops
    table = csv_table(pa.BufferReader(memoryview(raw)[start:]))
    return None if table is None else (table.column_names, float64_columns(table))


def parquet_files(path: Path) -> list[Path]:
    """The file itself, or a directory's part files in name order (as pyarrow reads them)."""
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def parquet_shape(path: Path) -> tuple[int, int]:
    """(rows, columns) from the Parquet footers alone, without reading any data."""
    import pyarrow.parquet as pq

    rows, columns = 0, 0
    try:
        for part in parquet_files(path):
            meta = pq.ParquetFile(part).metadata
            rows, columns = rows + meta.num_rows, max(columns, meta.num_columns)
    except (_pyarrow().ArrowException, OSError) as exc:
        raise DlportError(f"cannot read {path} as Parquet ({_first_line(exc)})") from None
    return rows, columns


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class ParquetBlocks:
    """A Parquet file (or directory of parts) read one row group at a time: the blocks of a
    streamed dataset. Names and types are checked once, from the schema; values block by
    block, with the row numbers of the whole file."""

    def __init__(self, path: Path, target: str | None):
        import pyarrow.parquet as pq

        from dlport.common.data import _checked_names, _target_column

        pa = _pyarrow()
        self.path = path
        try:
            self.files = [pq.ParquetFile(part) for part in parquet_files(path)]
        except (pa.ArrowException, OSError) as exc:
            raise DlportError(f"cannot read {path} as Parquet ({_first_line(exc)})") from None
        schema = self.files[0].schema_arrow
        self.names = _checked_names([str(n) for n in schema.names], str(path))
        for part in self.files[1:]:
            if [str(n) for n in part.schema_arrow.names] != self.names:
                raise DlportError(
                    f"{path}: part files have different columns; give parts of one table"
                )
        check_numeric(str(path), self.names, schema.types)
        self.target_name, self.target = _target_column(self.names, str(path), target)
        self.features = [j for j in range(len(self.names)) if j != self.target]
        self.feature_names = [self.names[j] for j in self.features]
        self.groups = [
            (f, g, part.metadata.row_group(g).num_rows)
            for f, part in enumerate(self.files)
            for g in range(part.num_row_groups)
            if part.metadata.row_group(g).num_rows
        ]
        if not self.groups:
            raise DlportError(f"{path} has columns but no rows")
        self.block_rows = tuple(rows for _, _, rows in self.groups)
        self.first_row = np.concatenate([[0], np.cumsum(self.block_rows)])

    def _table(self, block: int, columns=None):
        part, group, _ = self.groups[block]
        try:
            return self.files[part].read_row_group(group, columns=columns)
        except (_pyarrow().ArrowException, OSError) as exc:
            raise DlportError(f"cannot read {self.path} ({_first_line(exc)})") from None

    def read(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        from dlport.common.stream import check_finite

        table = self._table(block)
        first = int(self.first_row[block])
        check_complete(str(self.path), self.names, table, first)
        X = float64_columns(table, self.features)
        y = float64_columns(table, [self.target])[:, 0]
        return check_finite(str(self.path), first, X, y)

    def read_target(self, block: int) -> np.ndarray:
        column = self._table(block, [self.target_name]).column(0)
        return column.to_numpy(zero_copy_only=False).astype(np.float64)
