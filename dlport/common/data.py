"""Loading and validating datasets: CSV, NPZ, the bundled ``diabetes`` data and ``synthetic:...``.

Everything becomes float64 NumPy arrays here; frameworks cast to their dtype themselves.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from dlport.common.atomic import write_bytes_atomic
from dlport.common.errors import DlportError

BUNDLED = ("diabetes",)
SYNTHETIC_DEFAULTS = {"n": 1000, "d": 8, "noise": 0.1, "seed": 0}


@dataclass(frozen=True, eq=False)
class Dataset:
    X: np.ndarray  # (n, d) float64
    y: np.ndarray  # (n,) float64
    feature_names: tuple[str, ...]
    target_name: str
    source: str
    # Known generating coefficients (synthetic data only), in original units.
    true_weights: np.ndarray | None = None
    true_bias: float | None = None

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]


def load_dataset(spec: str, target: str | None = None) -> Dataset:
    """Load ``spec``: ``diabetes``, ``synthetic:n=..,d=..,noise=..,seed=..``, a .csv or an .npz."""
    spec = spec.strip()
    if spec in BUNDLED:
        with resources.files("dlport.datasets").joinpath(f"{spec}.csv").open("rb") as fh:
            return _from_csv_bytes(fh.read(), spec, target)
    if spec.startswith("synthetic"):
        return make_synthetic(spec)
    path = Path(spec)
    if not path.is_file():
        raise DlportError(
            f"data file not found: {spec}; give a .csv or .npz path, 'diabetes', "
            "or 'synthetic:n=1000,d=8,noise=0.1,seed=0'"
        )
    if path.suffix.lower() == ".npz":
        return _from_npz(path)
    return _from_csv_bytes(path.read_bytes(), str(path), target)


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
    rng = np.random.default_rng(int(p["seed"]))
    X = rng.standard_normal((n, d))
    w = 4.0 * rng.random(d) - 2.0
    b = float(4.0 * rng.random() - 2.0)
    y = X @ w + b + p["noise"] * rng.standard_normal(n)
    names = tuple(f"x{i}" for i in range(d))
    canonical = "synthetic:" + ",".join(f"{k}={p[k]:g}" for k in SYNTHETIC_DEFAULTS)
    return _validated(X, y, names, "y", canonical, true_weights=w, true_bias=b)


def _read_csv(raw: bytes, source: str) -> tuple[list[str], np.ndarray]:
    """Header and float64 values of a CSV, every cell numeric, every row complete."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DlportError(
            f"{source} is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV"
        ) from None
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if any(c.strip() for c in row)]
    except csv.Error as exc:
        raise DlportError(f"{source} is not valid CSV ({exc})") from None
    if not rows:
        raise DlportError(f"{source} is empty; it needs a header row and at least one data row")
    header = [name.strip() for name in rows[0]]
    body = rows[1:]
    if not body:
        raise DlportError(f"{source} has a header but no data rows")
    values = np.empty((len(body), len(header)))
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DlportError(
                f"{source} line {i} has {len(row)} fields, the header has {len(header)}; "
                "fix the ragged row"
            )
        for j, cell in enumerate(row):
            try:
                values[i - 2, j] = float(cell)
            except ValueError:
                raise DlportError(
                    f"{source} line {i}, column {header[j]!r}: {cell!r} is not a number; "
                    "dlport needs numeric columns"
                ) from None
    return header, values


def _from_csv_bytes(raw: bytes, source: str, target: str | None) -> Dataset:
    header, values = _read_csv(raw, source)
    if len(header) < 2:
        raise DlportError(f"{source} needs at least two columns (features and a target)")
    target = header[-1] if target is None else target
    if target not in header:
        raise DlportError(
            f"target column {target!r} not in {source}; columns are: {', '.join(header)}"
        )
    t = header.index(target)
    features = tuple(name for j, name in enumerate(header) if j != t)
    return _validated(np.delete(values, t, axis=1), values[:, t], features, target, source)


def load_features(
    spec: str, feature_names: list[str], target: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """The columns a model was trained on, by name where the data has names; y if present."""
    path = Path(spec)
    if path.suffix.lower() == ".csv" and path.is_file():
        header, values = _read_csv(path.read_bytes(), spec)
        missing = [name for name in feature_names if name not in header]
        if missing:
            raise DlportError(
                f"{spec} lacks the model's feature column(s) {missing}; it has: {', '.join(header)}"
            )
        X = values[:, [header.index(name) for name in feature_names]]
        y = values[:, header.index(target)] if target in header else None
        for array in (X, y):
            if array is not None and not np.isfinite(array).all():
                raise DlportError(f"{spec} contains NaN or inf; drop or impute those rows")
        return X, y
    if path.suffix.lower() == ".npz":
        data = _from_npz(path, require_target=False)
    else:
        data = load_dataset(spec)
    if data.n_features != len(feature_names):
        raise DlportError(
            f"{spec} has {data.n_features} features but the model was trained on "
            f"{len(feature_names)}; give data with the training features"
        )
    return data.X, (None if data.target_name is None else data.y)


def _from_npz(path: Path, require_target: bool = True) -> Dataset:
    """X and y (with ``require_target=False``, y may be absent: target_name is then None)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {"X", "y"} - set(npz.files)
            if not require_target and missing == {"y"}:
                X = npz["X"]
                return _validated(
                    X,
                    np.zeros(len(X)),
                    tuple(f"x{i}" for i in range(X.shape[1])) if X.ndim == 2 else (),
                    None,
                    str(path),
                )
            if missing:
                raise DlportError(
                    f"{path} lacks array(s) {sorted(missing)}; "
                    "save it with np.savez(path, X=X, y=y)"
                )
            X, y = npz["X"], npz["y"]
            names = tuple(str(s) for s in npz["feature_names"]) if "feature_names" in npz else None
            target = str(npz["target_name"]) if "target_name" in npz else "y"
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DlportError(f"cannot read {path} as .npz ({exc})") from None
    if X.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise DlportError(f"{path}: X and y must be numeric arrays, got {X.dtype} and {y.dtype}")
    if names is None and X.ndim == 2:
        names = tuple(f"x{i}" for i in range(X.shape[1]))
    return _validated(X, y, names or (), target, str(path))


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
    X = np.asarray(X, dtype=np.float64)
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
    for array, what in ((X, "features"), (y, "target")):
        if not np.isfinite(array).all():
            row = int(np.argwhere(~np.isfinite(array))[0][0])
            raise DlportError(
                f"{source}: {what} contain NaN or inf (first at data row {row + 1}); "
                "drop or impute those rows"
            )
    return Dataset(X, y, tuple(names), target, source, **truth)
