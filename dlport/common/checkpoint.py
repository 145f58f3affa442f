"""The framework-neutral checkpoint: one JSON file, checksummed, written atomically.

Weights are kept twice: in training units (to resume) and in the data's original units (to
predict with any framework). Optimizer state is the writing framework's own (its slots, step
counter), so a resume in that framework continues bit for bit. The batch order is a pure
function of (seed, epoch), so the RNG position is the next epoch.

The SHA-256 checksum is for integrity, not authenticity: it catches accidental damage (a cut
copy, a flipped bit, a hand edit that left it stale), but anyone can recompute it after an
edit, so it says nothing about who wrote the file. What makes a checkpoint from elsewhere safe
to load is what it can hold: JSON numbers and strings, no pickle and no code, read under a size
cap and checked field by field against one schema (``_schema``); on resume, the optimizer state
must have exactly the slots, shapes and dtypes of the run's own (``check_optimizer_state``). A
hostile checkpoint can give a model wrong numbers, within those bounds, and nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlport.common.atomic import write_text_atomic
from dlport.common.callbacks import Callback
from dlport.common.config import RESUME_MAY_CHANGE, TrainConfig
from dlport.common.errors import DlportError, Interrupted
from dlport.common.registry import framework_names

FORMAT = "dlport-checkpoint"
SCHEMA_VERSION = 1
# A checkpoint holds about six vectors of d numbers (~25 bytes each as JSON) and one loss per
# epoch: 64 MiB fits ~400k features or ~2.5M epochs. The cap bounds what a read can cost (parsed
# JSON takes up to ~25x its text in memory), whatever file it is given.
MAX_BYTES = 64 << 20
_MAX_DEPTH = 8  # optimizer states nest 2-3 levels (torch: {parameter: {slot: array}})
_DTYPES = ("float32", "float64", "int32", "int64")  # all that optimizers keep


def encode_state(value: Any) -> Any:
    """Nested dicts/lists with NumPy arrays -> JSON-safe values (arrays tagged, exact floats)."""
    if isinstance(value, np.ndarray):
        return {
            "__array__": value.astype(np.float64).ravel().tolist(),
            "shape": list(value.shape),
            "dtype": str(value.dtype),
        }
    if isinstance(value, dict):
        return {str(k): encode_state(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_state(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def decode_state(value: Any, where: str = "optimizer", depth: int = 0) -> Any:
    """The inverse of ``encode_state``; anything it cannot have made raises ValueError naming
    ``where``, before NumPy allocates anything."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"{where} is nested too deeply")
    if isinstance(value, dict) and "__array__" in value:
        return _decode_array(value, where)
    if isinstance(value, dict):
        return {k: decode_state(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_state(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    _want(_is_number(value), where, "a number, array, list or object", value)
    return value


def _decode_array(tag: dict, where: str) -> np.ndarray:
    values, shape, dtype = tag["__array__"], tag.get("shape"), tag.get("dtype")
    if set(tag) != {"__array__", "shape", "dtype"}:
        raise ValueError(f"{where} must have exactly the keys __array__, shape, dtype")
    if dtype not in _DTYPES:
        raise ValueError(f"{where} has dtype {dtype!r}; a checkpoint holds {', '.join(_DTYPES)}")
    ok_shape = isinstance(shape, list) and len(shape) <= _MAX_DEPTH and all(map(_is_count, shape))
    _want(ok_shape, f"{where}.shape", "a list of non-negative integers", shape)
    _want(isinstance(values, list) and all(map(_is_number, values)), where, "numbers", values)
    if len(values) != math.prod(shape):
        raise ValueError(f"{where} has {len(values)} values for shape {shape}")
    exact = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        array = exact.astype(dtype)
    # The writer stores each value exactly as float64: one the dtype cannot hold is damage.
    if not np.array_equal(array.astype(np.float64), exact):
        raise ValueError(f"{where}: {dtype} cannot hold its values")
    return array.reshape(shape)


IN_MEMORY_ORDER = "epoch_order(n, seed, epoch)"


def data_fingerprint(X: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (X, y):
        # The array's own buffer: tobytes() would copy the whole dataset first.
        digest.update(np.ascontiguousarray(array, dtype=np.float64).data)
    return digest.hexdigest()


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name}")  # writers never emit NaN/Infinity


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e999: the writer never emits one
        raise ValueError(f"non-finite number {text}")
    return value


def _checksum(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# -- the schema: one check per field, at read, so that no reader meets a surprise later --------
Check = Callable[[Any, str], None]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _shown(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return f"{'a list' if isinstance(value, list) else 'an object'} of {len(value)}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _want(ok: bool, where: str, what: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{where} must be {what}, got {_shown(value)}")


def _kind(test: Callable[[Any], bool], what: str) -> Check:
    return lambda value, where: _want(test(value), where, what, value)


_string = _kind(lambda v: isinstance(v, str), "a string")
_flag = _kind(lambda v: isinstance(v, bool), "true or false")
_number = _kind(_is_number, "a number")
_integer = _kind(lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
_count = _kind(_is_count, "a non-negative integer")
_positive = _kind(lambda v: _is_count(v) and v > 0, "a positive integer")


def _list(item: Callable[[Any], bool], what: str, n: int | None = None) -> Check:
    what = what if n is None else f"{n} {what}"
    return _kind(lambda v: isinstance(v, list) and n in (None, len(v)) and all(map(item, v)), what)


def _record(fields: dict[str, Check]) -> Check:
    def check(value: Any, where: str) -> None:
        _want(isinstance(value, dict), where, "an object", value)
        for key, field in fields.items():
            name = f"{where}.{key}" if where else key
            if key not in value:
                raise ValueError(f"{name} is missing")
            field(value[key], name)

    return check


_CONFIG_FIELDS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
_CONFIG_KINDS = {bool: _flag, int: _integer, float: _number, str: _string}
# Settings newer than the first checkpoints: one without them ran with the default.
_CONFIG_ADDED_LATER = (
    "tf32",
    "clip_norm",
    "weight_decay",
    "lr_schedule",
    "warmup_epochs",
    "loss",
    "validation",
    "early_stopping",
    "restore_best",
    "fit_intercept",
)
# Settings where None means something (full batch, no clipping), else of this kind.
_CONFIG_NULLABLE = {"batch_size": _integer, "clip_norm": _number, "early_stopping": _integer}


def _config(value: Any, where: str) -> None:
    _want(isinstance(value, dict), where, "an object", value)
    unknown = sorted(set(value) - set(_CONFIG_FIELDS))
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}")
    for name, default in _CONFIG_FIELDS.items():
        if name not in value and name not in _CONFIG_ADDED_LATER:
            raise ValueError(f"{where}.{name} is missing")
        if name not in value or (name in _CONFIG_NULLABLE and value[name] is None):
            continue
        kind = _CONFIG_NULLABLE.get(name) or _CONFIG_KINDS[type(default)]
        kind(value[name], f"{where}.{name}")
    try:
        TrainConfig(**value)
    except DlportError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _optimizer(value: Any, where: str) -> None:
    _want(isinstance(value, dict), where, "an object", value)
    decode_state(value, where)


def _one_of(names: list[str]) -> Check:
    return _kind(lambda v: isinstance(v, str) and v in names, f"one of {', '.join(names)}")


def _schema(n: int) -> Check:
    """The payload of a checkpoint of ``n`` features."""
    vector = _list(_is_number, "numbers", n)
    model = _record({"weights": vector, "bias": _number})
    return _record(
        {
            "framework": _one_of(framework_names()),
            "framework_version": _string,
            "dlport_version": _string,
            "conventions": _record({"adam_eps": _string, "float32_hyperparameters": _flag}),
            "config": _config,
            "data": _record(
                {
                    "source": _string,
                    "n_features": _positive,
                    "n_samples": _positive,
                    "feature_names": _list(lambda v: isinstance(v, str), "strings", n),
                    "target": _string,
                    "fingerprint": _string,
                }
            ),
            "standardization": _record(
                {"x_mean": vector, "x_scale": vector, "y_mean": _number, "y_scale": _number}
            ),
            "rng": _record({"seed": _count, "next_epoch": _count}),
            "epoch": _count,
            "history": _record({"loss": _list(_is_number, "numbers")}),
            "params": model,
            "model": model,
            "optimizer": _optimizer,
        }
    )


def _check_payload(payload: dict[str, Any]) -> None:
    _record({"data": _record({"n_features": _positive})})(payload, "")
    _schema(payload["data"]["n_features"])(payload, "")
    epoch, history = payload["epoch"], payload["history"]
    if payload["config"].get("validation"):
        _record({"val_loss": _list(_is_number, "numbers", epoch)})(history, "history")
    if "best" in payload:
        n = payload["data"]["n_features"]
        best = {"epoch": _positive, "weights": _list(_is_number, "numbers", n), "bias": _number}
        _record(best)(payload["best"], "best")
    losses = len(history["loss"])
    if losses != epoch:
        raise ValueError(f"{losses} losses in history but epoch {epoch}")
    if epoch > payload["config"]["epochs"]:
        raise ValueError(f"epoch {epoch} is past config.epochs {payload['config']['epochs']}")


def _read_capped(path: Path) -> bytes:
    """The file's bytes; no checkpoint is a device or a FIFO (/dev/zero never ends, a FIFO
    blocks) or over MAX_BYTES, and the read stops at the cap whatever the file claims."""
    too_big = (
        f"{path} is over {MAX_BYTES >> 20} MiB, more than a dlport checkpoint holds; "
        "give the file that dlport train --checkpoint wrote"
    )
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise DlportError(f"{path} is not a regular file; give a checkpoint file")
        if st.st_size > MAX_BYTES:
            raise DlportError(too_big)
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise DlportError(f"checkpoint not found: {path}") from None
    except OSError as exc:
        raise DlportError(f"cannot read checkpoint {path} ({exc.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise DlportError(too_big)
    return raw


@dataclass
class Checkpoint:
    """A checkpoint's payload; one that ``read`` returned has passed the schema."""

    payload: dict[str, Any]

    # -- the fields every reader needs ------------------------------------------------------
    @property
    def framework(self) -> str:
        return self.payload["framework"]

    @property
    def epoch(self) -> int:
        return self.payload["epoch"]

    @property
    def model(self) -> tuple[np.ndarray, float]:
        """Weights and bias in the data's original units."""
        model = self.payload["model"]
        return np.asarray(model["weights"], dtype=np.float64), float(model["bias"])

    @property
    def train_params(self) -> tuple[np.ndarray, float]:
        """Weights and bias in training (standardized) units, to resume from."""
        params = self.payload["params"]
        return np.asarray(params["weights"], dtype=np.float64), float(params["bias"])

    @property
    def optimizer_state(self) -> dict:
        """The writer's optimizer state, decoded afresh (a framework may update it in place)."""
        return decode_state(self.payload["optimizer"])

    @property
    def n_features(self) -> int:
        return self.payload["data"]["n_features"]

    def write(self, path: str | Path) -> None:
        document = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "sha256": _checksum(self.payload),
            "payload": self.payload,
        }
        write_text_atomic(path, json.dumps(document, allow_nan=False) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> Checkpoint:
        path = Path(path)
        fix = "re-create it with dlport train --checkpoint"
        raw = _read_capped(path)
        try:
            document = json.loads(
                raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float
            )
        except RecursionError:
            raise DlportError(
                f"{path} is not a dlport checkpoint (nested too deeply); {fix}"
            ) from None
        except (UnicodeDecodeError, json.JSONDecodeError, ValueError):
            raise DlportError(
                f"{path} is not a dlport checkpoint (truncated or corrupted); {fix}"
            ) from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise DlportError(f"{path} is not a dlport checkpoint; {fix}")
        version = document.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise DlportError(
                f"{path} has checkpoint schema {version!r}, newer than this "
                f"dlport reads ({SCHEMA_VERSION}); upgrade dlport"
            )
        payload = document.get("payload")
        if not isinstance(payload, dict) or document.get("sha256") != _checksum(payload):
            raise DlportError(f"{path} fails its checksum (corrupted or edited); {fix}")
        try:
            _check_payload(payload)
        except (ValueError, OverflowError) as exc:  # OverflowError: an integer past float64
            raise DlportError(f"{path} is a malformed checkpoint ({exc}); {fix}") from None
        return cls(payload)


def check_resume_framework(checkpoint: Checkpoint, framework: str) -> None:
    """Optimizer state is the writer's own: only that framework can continue it."""
    if checkpoint.framework != framework:
        raise DlportError(
            f"the checkpoint was written by {checkpoint.framework}; resume it with "
            f"--framework {checkpoint.framework} (any framework can predict from it)"
        )


def check_resumable(checkpoint: Checkpoint, framework: str, config, data) -> None:
    """A resume continues the same run: same framework, data and settings (epochs may grow;
    the device may change, as "auto" already does from one machine to another)."""
    if config.solver == "exact":
        raise DlportError("the exact solver has nothing to resume; run it again instead")
    check_resume_framework(checkpoint, framework)
    saved = checkpoint.payload["config"] | {k: getattr(config, k) for k in RESUME_MAY_CHANGE}
    changed = sorted(k for k, v in config.to_dict().items() if saved.get(k) != v)
    if changed:
        raise DlportError(f"resume must keep the checkpoint's settings; these differ: {changed}")
    planned = checkpoint.payload["config"]["epochs"]
    if config.lr_schedule == "cosine" and config.epochs != planned:
        raise DlportError(
            f"a cosine schedule decays over the run's {planned} epochs; resume with --epochs "
            f"{planned} (another length would change every rate after the checkpoint)"
        )
    order = getattr(data, "batch_order", IN_MEMORY_ORDER)
    saved_order = checkpoint.payload["rng"].get("batch_order", IN_MEMORY_ORDER)
    if saved_order != order:
        raise DlportError(
            f"the checkpoint's batch order is {saved_order} but this run's is {order}; "
            "resume with the same --max-memory"
        )
    if checkpoint.payload["data"]["fingerprint"] != data.fingerprint():
        raise DlportError("the checkpoint was trained on other data; resume with the same --data")
    if checkpoint.epoch > config.epochs:
        raise DlportError(
            f"the checkpoint is at epoch {checkpoint.epoch}, past --epochs {config.epochs}"
        )


def check_optimizer_state(state: Any, expected: Any, run: str) -> None:
    """``state`` must be shaped exactly like ``expected``, what a fresh runner of this run
    reports: the same keys and list lengths, arrays of the same shape and dtype, numbers where
    numbers. The frameworks' own loaders check less (Keras only warns about an unknown
    variable and drops the state; torch takes any shape and fails, or broadcasts, later)."""
    problem = _mismatch(state, expected, "optimizer")
    if problem:
        raise DlportError(
            f"the checkpoint's optimizer state does not fit {run}: {problem}; it was not "
            "written by this dlport for this run: train again without --resume"
        )


def _mismatch(state: Any, expected: Any, where: str) -> str | None:
    if isinstance(expected, dict):
        if not isinstance(state, dict):
            return f"{where} must be an object, got {_shown(state)}"
        missing = [k for k in expected if k not in state]
        extra = [k for k in state if k not in expected]
        if missing or extra:
            return f"{where}.{(missing or extra)[0]} is {'missing' if missing else 'unexpected'}"
        pairs = [(state[k], expected[k], f"{where}.{k}") for k in expected]
    elif isinstance(expected, (list, tuple)):
        if not isinstance(state, list):
            return f"{where} must be a list, got {_shown(state)}"
        if len(state) != len(expected):
            at = min(len(state), len(expected))
            return f"{where}[{at}] is {'missing' if at == len(state) else 'unexpected'}"
        pairs = [(state[i], e, f"{where}[{i}]") for i, e in enumerate(expected)]
    elif isinstance(expected, np.ndarray):
        if not isinstance(state, np.ndarray):
            return f"{where} must be an array, got {_shown(state)}"
        if state.shape != expected.shape:
            return f"{where} has shape {list(state.shape)}, not {list(expected.shape)}"
        if state.dtype != expected.dtype:
            return f"{where} has dtype {state.dtype}, not {expected.dtype}"
        return None
    elif isinstance(expected, (int, np.integer)):  # a step counter
        return None if _is_count(state) else f"{where} must be a count, got {_shown(state)}"
    else:
        return None if _is_number(state) else f"{where} must be a number, got {_shown(state)}"
    return next(filter(None, (_mismatch(*pair) for pair in pairs)), None)


@dataclass
class Checkpointing(Callback):
    """The callback that writes checkpoints: at the end to ``path`` (and every ``every``
    epochs); on Ctrl-C, the last complete epoch to ``interrupt_path`` (else ``path``)."""

    path: Path | None = None
    every: int | None = None
    interrupt_path: Path | None = None

    def on_train_begin(self, run):
        self._saver = _Saver(self, run.trainer, run.config, run.data, run.scaler)
        if run.resume is not None:
            self._saver.resumed(run.resume, run)

    def on_epoch_end(self, run, epoch, runner):
        self._saver.epoch_done(epoch, run, runner)

    def on_train_end(self, run, w, b, runner):
        optimizer = {} if runner is None else runner.optimizer_state()
        self._saver.finished(len(run.history), run, w, b, optimizer)

    def on_interrupt(self, run):
        self._saver.interrupted()


class _Saver:
    """Keeps the state of the last completed epoch, so a Ctrl-C mid-epoch can still save it.

    Its cost per epoch does not grow with the epochs: the loss history is kept by reference
    (training only appends to it) and copied only into a file being written."""

    def __init__(self, plan: Checkpointing, trainer, config, data, scaler):
        self.plan, self.scaler = plan, scaler
        self.last: Checkpoint | None = None  # its history is filled in when it is written
        self.history: dict[str, list[float]] = {}  # the run's lists (loss, val_loss)
        self.header = {
            "framework": trainer.name,
            "framework_version": trainer.version(),
            "conventions": trainer.conventions.to_dict(),
            "config": config.to_dict(),
            "data": {
                "source": data.source,
                "n_features": data.n_features,
                "n_samples": data.n_samples,
                "feature_names": list(data.feature_names),
                "target": data.target_name,
                "fingerprint": data.fingerprint(),
            },
            "standardization": scaler.to_dict(),
            "rng": {
                "batch_order": getattr(data, "batch_order", IN_MEMORY_ORDER),
                "seed": config.seed,
            },
        }

    def _snapshot(self, epoch: int, w, b, optimizer: dict, best=None) -> Checkpoint:
        import dlport

        weights, bias = self.scaler.to_original(w, b)
        payload = dict(
            self.header,
            dlport_version=dlport.__version__,
            epoch=epoch,
            params={"weights": np.asarray(w, dtype=np.float64).tolist(), "bias": float(b)},
            model={"weights": weights.tolist(), "bias": bias},
            optimizer=encode_state(optimizer),
        )
        payload["rng"] = dict(payload["rng"], next_epoch=epoch)
        if best is not None:  # EarlyStopping's, for --restore-best after a resume
            payload["best"] = {
                "epoch": best.epoch,
                "weights": np.asarray(best.weights, dtype=np.float64).tolist(),
                "bias": float(best.bias),
            }
        return Checkpoint(payload)

    def _write(self, target: Path) -> None:
        epoch = self.last.epoch
        self.last.payload["history"] = {k: v[:epoch] for k, v in self.history.items()}
        self.last.write(target)

    @staticmethod
    def _lists(run) -> dict[str, list[float]]:
        validated = run.config.validation
        return {"loss": run.history} | ({"val_loss": run.val_history} if validated else {})

    def resumed(self, checkpoint: Checkpoint, run) -> None:
        """The run continues ``checkpoint``: until an epoch ends, a Ctrl-C saves that again,
        with this run's config (its --epochs, so that a resume of it goes as far)."""
        payload = dict(checkpoint.payload, config=self.header["config"])
        self.last, self.history = Checkpoint(payload), self._lists(run)

    def epoch_done(self, epoch: int, run, runner) -> None:
        state = runner.optimizer_state()
        self.last = self._snapshot(epoch, *runner.params(), state, run.best)
        self.history = self._lists(run)
        if self.plan.path and self.plan.every and epoch % self.plan.every == 0:
            self._write(self.plan.path)

    def finished(self, epoch: int, run, w, b, optimizer: dict) -> None:
        if not self.plan.path:
            return
        try:
            self.last = self._snapshot(epoch, w, b, optimizer, run.best)
            self.history = self._lists(run)
            self._write(self.plan.path)
        except KeyboardInterrupt:  # the write is atomic: whatever the file holds, write it again
            self.interrupted()
            raise

    def interrupted(self) -> None:
        """On Ctrl-C: write the last completed epoch and raise Interrupted saying where; with
        nothing to write, return (the caller re-raises KeyboardInterrupt: nothing was saved)."""
        target = self.plan.interrupt_path or self.plan.path
        if self.last is not None and target is not None:
            self._write(target)
            raise Interrupted(
                f"interrupted after epoch {self.last.epoch}; checkpoint written to {target}; "
                f"continue with --resume {target}"
            )
