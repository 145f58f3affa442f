"""Explicit framework names -> trainer classes, imported only when asked for (as tensorly does)."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from dlport.common.errors import DlportError
from dlport.common.pythons import unsupported_reason


@dataclass(frozen=True)
class FrameworkEntry:
    target: str  # "module:Class"
    tox_env: str
    extra: str
    keras_backend: str | None = None  # a Keras 3 port: the backend its process loads Keras on
    data_parallel: bool = False  # trains with --workers N on its own distributed engine


FRAMEWORKS: dict[str, FrameworkEntry] = {
    "numpy": FrameworkEntry("dlport.frameworks.numpy.trainer:NumpyTrainer", "core", ""),
    "torch": FrameworkEntry(
        "dlport.frameworks.torch.trainer:TorchTrainer", "torch", "torch", data_parallel=True
    ),
    "tensorflow": FrameworkEntry(
        "dlport.frameworks.tensorflow.trainer:TensorFlowTrainer",
        "tensorflow",
        "tensorflow",
        "tensorflow",
        data_parallel=True,
    ),
    "mxnet": FrameworkEntry(
        "dlport.frameworks.mxnet.trainer:MXNetTrainer", "mxnet", "mxnet", data_parallel=True
    ),
    "jax": FrameworkEntry(
        "dlport.frameworks.jax.trainer:JaxTrainer", "jax", "jax", data_parallel=True
    ),
    "keras-jax": FrameworkEntry(
        "dlport.frameworks.keras_jax.trainer:KerasJaxTrainer", "keras-jax", "keras-jax", "jax"
    ),
    "keras-torch": FrameworkEntry(
        "dlport.frameworks.keras_torch.trainer:KerasTorchTrainer",
        "keras-torch",
        "keras-torch",
        "torch",
    ),
}


def framework_names() -> list[str]:
    """Every framework dlport has a port for, the NumPy reference first (installed or not)."""
    return list(FRAMEWORKS)


def ported_names() -> list[str]:
    """Every framework but the NumPy reference: what compare, bench and the e2e tests run."""
    return [name for name in FRAMEWORKS if name != "numpy"]


def data_parallel_names() -> list[str]:
    """The frameworks that train with ``--workers N`` on their own distributed engine."""
    return [name for name, entry in FRAMEWORKS.items() if entry.data_parallel]


def tox_envs() -> list[str]:
    """The framework envs that compare, e2e and bench build (tox.ini lists them: a test keeps
    the two lists equal)."""
    return [FRAMEWORKS[name].tox_env for name in ported_names()]


def check_name(name: str) -> FrameworkEntry:
    try:
        return FRAMEWORKS[name]
    except KeyError:
        raise DlportError(
            f"unknown framework {name!r}; choose one of: {', '.join(FRAMEWORKS)}"
        ) from None


def get_trainer_class(name: str):
    entry = check_name(name)
    module_name, _, class_name = entry.target.partition(":")
    unsupported = unsupported_reason(name, sys.version_info)
    if unsupported:
        raise DlportError(unsupported)
    if entry.keras_backend:  # refused before anything loads if Keras is on another backend
        from dlport.frameworks.keras import use_backend

        use_backend(entry.keras_backend, name)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or e.g. MXNet's AttributeError on a newer numpy
        raise DlportError(
            f"framework {name!r} is not installed in this environment ({exc}); "
            f"run it in `tox -e {entry.tox_env}` or `pip install 'dlport[{entry.extra}]'`"
        ) from None
    return getattr(module, class_name)


def get_trainer(name: str, **kwargs):
    """The trainer of framework ``name``, imported now; a ``DlportError`` naming the env or
    extra to install when this Python lacks it. ``trainer.fit(data, config)`` trains."""
    return get_trainer_class(name)(**kwargs)
