"""Loading and validating datasets: CSV, NPZ, Parquet and Feather/Arrow (``arrow.py``), pandas
DataFrames and pyarrow Tables, the bundled ``diabetes`` data and ``synthetic:...``.

Everything becomes float64 NumPy arrays here; frameworks cast to their dtype themselves.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import zipfile
import zlib
from array import array
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from dlport.common import arrow
from dlport.common.atomic import write_bytes_atomic
from dlport.common.csv_blocks import estimated_shape
from dlport.common.errors import DlportError

BUNDLED = ("diabetes",)
SYNTHETIC_DEFAULTS = {"n": 1000, "d": 8, "noise": 0.1, "seed": 0}
# Parsing holds a CSV's bytes, its text and its values at once: at least twice its size.
CSV_MEMORY_FACTOR = 2
# From this size on a CSV goes to pyarrow first: below it Python parses it in a few ms, less
# than importing pyarrow takes (~0.2 s), so `--data diabetes` stays quick.
ARROW_CSV_FROM = 1 << 20
_ROWS_CHECKED = 1 << 15
NPZ_MEMBERS = ("X", "y", "feature_names", "target_name")
NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features and target as float64 arrays, with their names and where they came from."""

    X: np.ndarray  # (n, d) float64
    y: np.ndarray  # (n,) float64
    feature_names: tuple[str, ...]
    target_name: str
    source: str
    # Known generating coefficients (synthetic data only), in original units.
    true_weights: np.ndarray | None = None
    true_bias: float | None = None

    @classmethod
    def from_arrays(
        cls, X, y, feature_names=None, target_name: str = "y", source: str = "arrays"
    ) -> Dataset:
        """A dataset from arrays (anything ``np.asarray`` takes), checked as files are: 2-D X,
        y of one value per row, finite values; features named ``x0, x1, ...`` unless given."""
        X = np.asarray(X, dtype=np.float64)
        if feature_names is None:
            feature_names = [f"x{j}" for j in range(X.shape[1] if X.ndim == 2 else 0)]
        return _validated(X, y, list(feature_names), target_name, source)

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    def fingerprint(self) -> str:
        from dlport.common.checkpoint import data_fingerprint

        return data_fingerprint(self.X, self.y)


def load_dataset(spec, target: str | None = None, *, max_memory=None):
    """Load ``spec``: a .csv, .npz, .parquet (or a directory of Parquet parts), .feather or
    .arrow file, ``diabetes``, ``synthetic:n=..,d=..,noise=..,seed=..`` (``synthetic`` alone:
    the defaults), or a pandas DataFrame or pyarrow Table. An existing file always wins, even
    one named ``diabetes``.

    ``max_memory`` (bytes, or a size such as ``"512MB"``; default half the memory available)
    bounds what training holds: data whose training in memory would pass it comes back as a
    ``StreamedDataset``, read a window of rows at a time (a Parquet file or a plain CSV is then
    never read whole).
    """
    from dlport.common import stream

    budget = memory_budget(max_memory)
    if isinstance(spec, (str, os.PathLike)):
        path = Path(str(spec).strip())
        parquet = arrow.is_arrow_path(path) and path.suffix.lower() not in arrow.IPC_SUFFIXES
        if parquet and stream.in_memory_bytes(*arrow.parquet_shape(path)) > budget:
            return stream.parquet_stream(path, target, budget)
        # A gzip CSV cannot be read a range at a time: it is read whole, as before.
        shape = _is_csv(path) and path.suffix.lower() != ".gz" and estimated_shape(path)
        if shape and stream.in_memory_bytes(*shape) > budget:
            return stream.csv_stream(path, target, budget, shape[1])
    data = _load(spec, target)
    n, d = data.X.shape
    if stream.in_memory_bytes(n, d + 1) <= budget:
        return data
    return stream.stream_arrays(
        data.X, data.y, data.feature_names, data.target_name, data.source, budget
    )


def memory_budget(max_memory=None) -> int:
    """``--max-memory`` in bytes; by default half of the memory available now."""
    from dlport.common.stream import parse_size

    if max_memory is None:
        available = available_memory()
        return available // 2 if available else 1 << 62
    return parse_size(max_memory) if isinstance(max_memory, str) else int(max_memory)


def _load(spec, target: str | None) -> Dataset:
    if not isinstance(spec, (str, os.PathLike)):
        return _from_table(arrow.as_table(spec), type(spec).__name__, target)
    spec = str(spec).strip()
    path = Path(spec)
    if arrow.is_arrow_path(path):
        if path.suffix.lower() not in arrow.IPC_SUFFIXES:
            return _from_parquet(path, target)
        return _from_table(arrow.read_table(path), str(path), target)
    if path.is_file():
        if path.suffix.lower() == ".npz":
            _no_target(target, spec, "holds X and y apart")
            return _from_npz(path)[0]
        source = f"./{spec}" if spec in BUNDLED else str(path)  # not the bundled set's name
        table = _arrow_csv(path, source)
        if table is not None:
            return _from_table(table, source, target)
        return _from_columns(*_read_csv(_read_file(path), source), source, target)
    if spec in BUNDLED:
        return _from_columns(*_read_csv(_bundled(spec), spec), spec, target)
    if spec == "synthetic" or spec.startswith("synthetic:"):
        _no_target(target, spec, "generates its target y")
        return make_synthetic(spec)
    raise DlportError(
        f"data file not found: {spec}; give a .csv(.gz), .npz, .parquet or .feather path, "
        "'diabetes', or 'synthetic:n=1000,d=8,noise=0.1,seed=0'"
    )


def _is_csv(path: Path) -> bool:
    """A file read as CSV: any but .npz and the Arrow formats, whatever its name."""
    return path.is_file() and path.suffix.lower() != ".npz" and not arrow.is_arrow_path(path)


def _no_target(target: str | None, spec: str, why: str) -> None:
    if target is not None:
        raise DlportError(f"a target column does not apply to {spec}: it {why}; drop --target")


def _bundled(name: str) -> bytes:
    return resources.files("dlport.datasets").joinpath(f"{name}.csv").read_bytes()


def _csv_size(path: Path) -> int:
    """The file's size; a .gz file's decompressed size, from its gzip trailer (the length mod
    2^32: a lower bound beyond 4 GB, as the compressed size is)."""
    size = path.stat().st_size
    if path.suffix.lower() == ".gz" and size >= 4:
        with open(path, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            size = max(size, int.from_bytes(fh.read(4), "little"))
    return size


def _read_file(path: Path) -> bytes:
    """The file's bytes; a .gz file's decompressed, sized first by its gzip trailer (the
    length mod 2^32: a lower bound beyond 4 GB, as the compressed size is)."""
    _check_csv_memory(path, str(path))
    if path.suffix.lower() != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        raise DlportError(
            f"cannot decompress {path} ({exc}); give a gzip file or plain CSV"
        ) from None


def _check_csv_memory(path: Path, source: str) -> None:
    """Parsing a CSV whole holds at least twice its size; past memory it must stream."""
    fix = (
        "decompress it (gunzip): a plain CSV past --max-memory streams"
        if path.suffix.lower() == ".gz"
        else "lower --max-memory so that it streams"
    )
    need = _csv_size(path) * CSV_MEMORY_FACTOR
    _check_memory(need, source, f" (at least {CSV_MEMORY_FACTOR}x its size)", fix)


def available_memory() -> int | None:
    """Bytes of memory still available on this machine, None where the system does not say."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _check_memory(need: int, what: str, detail: str, fix: str) -> None:
    """Refuse before allocating: a MemoryError (or the OOM killer) is no message."""
    available = available_memory()
    if available is not None and need > available:
        raise DlportError(
            f"{what} needs {_size(need)} of memory{detail} but {_size(available)} is available; "
            f"{fix}"
        )


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def parse_synthetic(spec: str) -> dict[str, float]:
    params: dict[str, float] = dict(SYNTHETIC_DEFAULTS)
    _, _, body = spec.partition(":")
    for item in filter(None, (part.strip() for part in body.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in SYNTHETIC_DEFAULTS:
            raise DlportError(
                f"bad synthetic spec item {item!r}; use synthetic:n=1000,d=8,noise=0.1,seed=0"
            )
        try:
            params[key] = float(value) if key == "noise" else int(value)
        except ValueError:
            raise DlportError(f"synthetic {key} must be a number, got {value!r}") from None
    if params["n"] < 1 or params["d"] < 1 or params["noise"] < 0 or params["seed"] < 0:
        raise DlportError("synthetic data needs n >= 1, d >= 1, noise >= 0 and seed >= 0")
    return params


def make_synthetic(spec: str) -> Dataset:
    """X ~ N(0, 1), y = X w + b + noise * N(0, 1), with w, b drawn from the seed."""
    p = parse_synthetic(spec)
    n, d = int(p["n"]), int(p["d"])
    _check_memory(8 * n * d, spec, " (X alone)", "use a smaller n or d")
    rng = np.random.default_rng(int(p["seed"]))
    X = rng.standard_normal((n, d))
    w = 4.0 * rng.random(d) - 2.0
    b = float(4.0 * rng.random() - 2.0)
    y = X @ w + b + p["noise"] * rng.standard_normal(n)
    names = tuple(f"x{i}" for i in range(d))
    canonical = "synthetic:" + ",".join(f"{k}={p[k]:g}" for k in SYNTHETIC_DEFAULTS)
    return _validated(X, y, names, "y", canonical, true_weights=w, true_bias=b)


def _arrow_csv(path: Path, source: str):
    """A large, plainly numeric CSV file read by pyarrow from the file itself (no copy of its
    bytes held); None for a small or not plainly numeric one."""
    if _csv_size(path) < ARROW_CSV_FROM:
        return None
    _check_csv_memory(path, source)
    table = arrow.csv_table(str(path))
    if table is not None:
        _checked_names(table.column_names, source)
    return table


def _read_csv(raw: bytes, source: str) -> tuple[list[str], np.ndarray]:
    """Header and float64 values of a CSV, every cell numeric, every row complete: pyarrow's
    parser where the file is plainly numeric, else ours, which names what is wrong."""
    fast = arrow.csv_values(raw) if len(raw) >= ARROW_CSV_FROM else None
    if fast is not None:
        return _checked_names(fast[0], source), fast[1]
    return _parse_csv(raw, source)


def _parse_csv(raw: bytes, source: str, line_offset: int = 0) -> tuple[list[str], np.ndarray]:
    """Python's csv module, a cell at a time: slow, exact about the line and cell it refuses.
    ``line_offset`` is added to the line numbers it names (``raw``: a header, then lines from
    further down the file)."""
    reader = csv.reader(_lines(csv_text(raw, source)))
    header: list[str] | None = None
    values = array("d")  # 8 bytes a cell, where a list of rows of strings takes ~60
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = _checked_names([name.strip() for name in row], source)
                continue
            line = reader.line_num + line_offset
            if len(row) != len(header):
                raise DlportError(
                    f"{source} line {line} has {len(row)} fields, the header has {len(header)}; "
                    "fix the ragged row"
                )
            for name, cell in zip(header, row, strict=True):
                try:
                    values.append(float(cell))
                except ValueError:
                    raise DlportError(
                        f"{source} line {line}, column {name!r}: {cell!r} is not a number; "
                        "dlport needs numeric columns"
                    ) from None
    except csv.Error as exc:
        raise DlportError(f"{source} is not valid CSV ({exc})") from None
    if header is None:
        raise DlportError(f"{source} is empty; it needs a header row and at least one data row")
    if not values:
        raise DlportError(f"{source} has a header but no data rows")
    return header, np.frombuffer(values).reshape(-1, len(header))


def csv_text(raw: bytes, source: str) -> str:
    """A CSV's bytes as text (UTF-8, with or without a byte-order mark), or a one-line refusal."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DlportError(
            f"{source} is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV"
        ) from None


def _lines(text: str):
    """The lines io.StringIO(text) gives, without its copy of 4 bytes a character."""
    start = 0
    while start < len(text):
        end = text.find("\n", start) + 1 or len(text)
        yield text[start:end]
        start = end


def _checked_names(names: list[str], source: str) -> list[str]:
    """Names that pick one column each: matching by name must not guess."""
    if "" in names:
        raise DlportError(
            f"{source}: column {names.index('') + 1} has no name; name every header column"
        )
    duplicates = [name for name, count in Counter(names).items() if count > 1]
    if duplicates:
        raise DlportError(
            f"{source}: duplicate column name(s) {', '.join(map(repr, duplicates))}; "
            "give every column its own name"
        )
    return names


def _table_values(table, source: str) -> tuple[list[str], np.ndarray]:
    need = 8 * table.num_rows * table.num_columns
    _check_memory(need, source, " (its values as float64)", "use a smaller file")
    return arrow.table_values(table, source, _checked_names)


def _from_table(table, source: str, target: str | None) -> Dataset:
    """X and y read from the table's columns straight into their own arrays (no array of all
    the columns, no copy to split the target off)."""
    need = 8 * table.num_rows * table.num_columns
    _check_memory(need, source, " (its values as float64)", "use a smaller file")
    header = arrow.checked_names(table, source, _checked_names)
    target, t = _target_column(header, source, target)
    features = [j for j in range(len(header)) if j != t]
    X, y = arrow.float64_columns(table, features), arrow.float64_columns(table, [t])[:, 0]
    return _validated(X, y, tuple(header[j] for j in features), target, source)


def _from_parquet(path: Path, target: str | None) -> Dataset:
    """A Parquet file read a row group at a time into X and y: it is never held twice."""
    blocks = arrow.ParquetBlocks(path, target)
    n, d = sum(blocks.block_rows), len(blocks.feature_names)
    _check_memory(8 * n * (d + 1), str(path), " (its values as float64)", "use a smaller file")
    X, y = np.empty((n, d)), np.empty(n)
    for block, first in enumerate(blocks.first_row[:-1]):
        rows = slice(first, first + blocks.block_rows[block])
        X[rows], y[rows] = blocks.read(block)
    return _validated(X, y, blocks.feature_names, blocks.target_name, str(path))


def _from_columns(header: list[str], values: np.ndarray, source: str, target: str | None):
    target, t = _target_column(header, source, target)
    features = tuple(name for j, name in enumerate(header) if j != t)
    return _validated(np.delete(values, t, axis=1), values[:, t], features, target, source)


def _target_column(header: list[str], source: str, target: str | None) -> tuple[str, int]:
    if len(header) < 2:
        raise DlportError(f"{source} needs at least two columns (features and a target)")
    target = header[-1] if target is None else target
    if target not in header:
        raise DlportError(
            f"target column {target!r} not in {source}; columns are: {', '.join(header)}"
        )
    return target, header.index(target)


def load_features(
    spec: str, feature_names: list[str], target: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """The columns a model was trained on and y if the data holds the target: by name where the
    data names its columns (CSV, bundled, an NPZ with feature_names), else by count."""
    spec = spec.strip()
    path = Path(spec)
    if path.is_file() and path.suffix.lower() == ".npz":
        data, named = _from_npz(path, require_target=False)
        has_y = data.target_name is not None
        if not named:
            return _by_count(data, spec, feature_names), data.y if has_y else None
        header = [*data.feature_names, *([data.target_name] if has_y else [])]
        values = np.column_stack([data.X, data.y]) if has_y else data.X
    elif arrow.is_arrow_path(path):
        header, values = _table_values(arrow.read_table(path), spec)
    elif path.is_file() or spec in BUNDLED:
        raw = _read_file(path) if path.is_file() else _bundled(spec)
        header, values = _read_csv(raw, spec)
    else:  # synthetic: its x0, x1, ... are positions, not names
        data = load_dataset(spec)
        return _by_count(data, spec, feature_names), data.y
    column = {name: j for j, name in enumerate(header)}
    missing = [name for name in feature_names if name not in column]
    if missing:
        raise DlportError(
            f"{spec} lacks the model's feature column(s) {missing}; it has: {', '.join(header)}"
        )
    X = values[:, [column[name] for name in feature_names]]
    y = values[:, column[target]] if target in column else None
    for array_, names in ((X, feature_names), (y, [target])):
        if array_ is not None:
            if not np.isfinite(array_).all():
                raise DlportError(f"{spec} contains NaN or inf; drop or impute those rows")
            _check_range(array_.reshape(len(array_), -1), names, spec)
    return X, y


def _by_count(data: Dataset, spec: str, feature_names: list[str]) -> np.ndarray:
    if data.n_features != len(feature_names):
        raise DlportError(
            f"{spec} has {data.n_features} features but the model was trained on "
            f"{len(feature_names)}; give data with the training features"
        )
    return data.X


def _from_npz(path: Path, require_target: bool = True) -> tuple[Dataset, bool]:
    """The dataset, and whether the file names X's columns. With ``require_target=False`` y may
    be absent: it is then zeros and target_name None."""
    try:
        _check_npz(path)
        with np.load(path, allow_pickle=False) as npz:
            missing = {"X", "y"} - set(npz.files)
            if missing and (require_target or missing != {"y"}):
                raise DlportError(
                    f"{path} lacks array(s) {sorted(missing)}; "
                    "save it with np.savez(path, X=X, y=y)"
                )
            X = npz["X"]
            y = npz["y"] if "y" in npz.files else None
            names = None
            if "feature_names" in npz.files:
                names = [str(s) for s in np.ravel(npz["feature_names"])]
            target = None if y is None else str(npz.get("target_name", "y"))
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DlportError(f"cannot read {path} as .npz ({exc})") from None
    named = names is not None
    if named:
        _checked_names(names + ([target] if target else []), str(path))
    elif X.ndim == 2:
        names = [f"x{i}" for i in range(X.shape[1])]
    y = np.zeros(X.shape[:1]) if y is None else y
    return _validated(X, y, names or (), target, str(path)), named


def _check_npz(path: Path) -> None:
    """Refuse, before numpy allocates anything: arrays larger than the memory available (a
    small compressed file may inflate to gigabytes), a header that disagrees with its member's
    size, and anything but numbers in X and y or names in feature_names and target_name."""
    with zipfile.ZipFile(path) as zf:
        # Every entry, not one per name: a zip may hold "X" and "X.npy", or two "X.npy".
        members = [(m.filename.removesuffix(".npy"), m) for m in zf.infolist()]
        members = [(name, m) for name, m in members if name in NPZ_MEMBERS]
        need = sum(m.file_size for _, m in members)
        _check_memory(need, str(path), " (its arrays alone)", "use a smaller file")
        for name, member in members:
            with zf.open(member) as fh:
                read_header = NPY_HEADER_READERS.get(np.lib.format.read_magic(fh))
                if read_header is None:
                    raise ValueError(f"{member.filename} is not a version 1 or 2 .npy array")
                shape, _, dtype = read_header(fh)
                # Before the size check: an object array's size is its pickle's, not its shape's.
                if dtype.kind not in ("biuf" if name in ("X", "y") else "biufUS"):
                    kind = "numeric" if name in ("X", "y") else "string"
                    raise DlportError(f"{path}: {name} must be a {kind} array, got {dtype}")
                size = math.prod(shape) * dtype.itemsize
                if fh.tell() + size != member.file_size:
                    raise DlportError(
                        f"{path}: {member.filename} is truncated or corrupted (its header "
                        f"describes {size} bytes of data); save it again"
                    )


def save_npz(data: Dataset, path: Path) -> None:
    """The dataset as .npz, so other environments load the very same float64 values."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        X=data.X,
        y=data.y,
        feature_names=np.array(data.feature_names),
        target_name=np.array(data.target_name),
    )
    write_bytes_atomic(path, buffer.getvalue())


def _validated(X, y, names, target, source, **truth) -> Dataset:
    # C order: NumPy's reductions sum in a layout-dependent order, and the same values must
    # train to the same bits whether they came as a CSV, a DataFrame or a Fortran array.
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if X.ndim != 2:
        raise DlportError(f"{source}: X must be 2-D (samples x features), got shape {X.shape}")
    if y.ndim != 1:
        raise DlportError(f"{source}: y must be 1-D, got shape {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise DlportError(
            f"{source}: X has {X.shape[0]} rows but y has {y.shape[0]}; they must match"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DlportError(f"{source} is empty (shape {X.shape}); it needs at least one row")
    if len(names) != X.shape[1]:
        raise DlportError(f"{source}: {len(names)} feature names for {X.shape[1]} columns")
    for array_, what in ((X, "features"), (y, "target")):
        # A block of rows at a time: the mask of the whole array would be an eighth of its size.
        for start in range(0, len(array_), _ROWS_CHECKED):
            block = array_[start : start + _ROWS_CHECKED]
            if not np.isfinite(block).all():
                row = start + int(np.argwhere(~np.isfinite(block))[0][0])
                raise DlportError(
                    f"{source}: {what} contain NaN or inf (first at data row {row + 1}); "
                    "drop or impute those rows"
                )
    _check_range(X, names, source)
    _check_range(y[:, None], [target], source)
    return Dataset(X, y, tuple(names), target, source, **truth)


def _check_range(columns: np.ndarray, names, source: str) -> None:
    """Refuse columns whose mean or variance overflows float64 (``refuse_overflow``)."""
    from dlport.common.standardize import column_moments, refuse_overflow

    # Deviations under 2 x the largest magnitude: their squares summed over the rows cannot
    # overflow below this bound. Two reductions without a temporary; the moments cost 3x more.
    bound = 0.5 * math.sqrt(float(np.finfo(np.float64).max) / len(columns))
    if max(-float(columns.min()), float(columns.max())) < bound:
        return
    with np.errstate(over="ignore", invalid="ignore"):
        moments = column_moments(columns)
    refuse_overflow(source, names, moments)
