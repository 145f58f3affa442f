"""The framework-neutral checkpoint: one JSON file, checksummed, written atomically.

Weights are kept twice: in training units (to resume) and in the data's original units (to
predict with any framework). Optimizer state is the writing framework's own (its slots, step
counter), so a resume in that framework continues bit for bit. The batch order is a pure
function of (seed, epoch), so the RNG position is the next epoch.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlport.common.atomic import write_text_atomic
from dlport.common.errors import DlportError, Interrupted

FORMAT = "dlport-checkpoint"
SCHEMA_VERSION = 1


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


def decode_state(value: Any) -> Any:
    if isinstance(value, dict) and "__array__" in value:
        return np.asarray(value["__array__"], dtype=value["dtype"]).reshape(value["shape"])
    if isinstance(value, dict):
        return {k: decode_state(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_state(v) for v in value]
    return value


def data_fingerprint(X: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (X, y):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
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


@dataclass
class Checkpoint:
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
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise DlportError(f"checkpoint not found: {path}") from None
        except OSError as exc:
            raise DlportError(f"cannot read checkpoint {path} ({exc.strerror})") from None
        try:
            document = json.loads(
                raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float
            )
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
            checkpoint = cls(payload)
            weights, _ = checkpoint.model
            if weights.shape != (checkpoint.n_features,):
                raise ValueError("weights do not match the feature count")
            checkpoint.framework, checkpoint.epoch  # noqa: B018 - the fields must exist
        except (KeyError, TypeError, ValueError) as exc:
            raise DlportError(f"{path} is a malformed checkpoint ({exc}); {fix}") from None
        return checkpoint


def check_resume_framework(checkpoint: Checkpoint, framework: str) -> None:
    """Optimizer state is the writer's own: only that framework can continue it."""
    if checkpoint.framework != framework:
        raise DlportError(
            f"the checkpoint was written by {checkpoint.framework}; resume it with "
            f"--framework {checkpoint.framework} (any framework can predict from it)"
        )


def check_resumable(checkpoint: Checkpoint, framework: str, config, data) -> None:
    """A resume continues the same run: same framework, data and settings (epochs may grow)."""
    if config.solver == "exact":
        raise DlportError("the exact solver has nothing to resume; run it again instead")
    check_resume_framework(checkpoint, framework)
    saved = dict(checkpoint.payload["config"], epochs=config.epochs)
    changed = sorted(k for k, v in config.to_dict().items() if saved.get(k) != v)
    if changed:
        raise DlportError(f"resume must keep the checkpoint's settings; these differ: {changed}")
    if checkpoint.payload["data"]["fingerprint"] != data_fingerprint(data.X, data.y):
        raise DlportError("the checkpoint was trained on other data; resume with the same --data")
    if checkpoint.epoch > config.epochs:
        raise DlportError(
            f"the checkpoint is at epoch {checkpoint.epoch}, past --epochs {config.epochs}"
        )


@dataclass
class Checkpointing:
    """Where and how often ``fit`` writes checkpoints; Ctrl-C writes one to ``interrupt_path``."""

    path: Path | None = None
    every: int | None = None
    interrupt_path: Path | None = None

    def saver(self, trainer, config, data, scaler) -> _Saver:
        return _Saver(self, trainer, config, data, scaler)


class _Saver:
    """Keeps the state of the last completed epoch, so a Ctrl-C mid-epoch can still save it."""

    def __init__(self, plan: Checkpointing, trainer, config, data, scaler):
        self.plan, self.scaler, self.last = plan, scaler, None
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
                "fingerprint": data_fingerprint(data.X, data.y),
            },
            "standardization": scaler.to_dict(),
            "rng": {"batch_order": "epoch_order(n, seed, epoch)", "seed": config.seed},
        }

    def _snapshot(self, epoch: int, history: list[float], w, b, optimizer: dict) -> Checkpoint:
        import dlport

        weights, bias = self.scaler.to_original(w, b)
        payload = dict(
            self.header,
            dlport_version=dlport.__version__,
            epoch=epoch,
            history={"loss": list(history)},
            params={"weights": np.asarray(w, dtype=np.float64).tolist(), "bias": float(b)},
            model={"weights": weights.tolist(), "bias": bias},
            optimizer=encode_state(optimizer),
        )
        payload["rng"] = dict(payload["rng"], next_epoch=epoch)
        return Checkpoint(payload)

    def epoch_done(self, epoch: int, history: list[float], runner) -> None:
        self.last = self._snapshot(epoch, history, *runner.params(), runner.optimizer_state())
        if self.plan.path and self.plan.every and epoch % self.plan.every == 0:
            self.last.write(self.plan.path)

    def finished(self, epoch: int, history: list[float], w, b, optimizer: dict) -> None:
        if self.plan.path:
            (self.last or self._snapshot(epoch, history, w, b, optimizer)).write(self.plan.path)

    def interrupted(self) -> None:
        target = self.plan.interrupt_path or self.plan.path
        if self.last is not None and target is not None:
            self.last.write(target)
            raise Interrupted(
                f"interrupted after epoch {self.last.epoch}; checkpoint written to {target}; "
                f"continue with --resume {target}"
            )
