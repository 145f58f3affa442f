"""Blocks of an in-memory pass run on threads: NumPy releases the GIL in its array loops."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, as under taskset or a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def ordered_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``list(map(fn, items))`` on a thread per usable CPU: results in ``items``' order, and
    the exception of the first failing item in that order, as the serial loop raises it."""
    workers = min(usable_cpus(), len(items))
    if workers <= 1:
        return list(map(fn, items))
    # Each task under the caller's np.errstate, which pool threads would not otherwise see:
    # NumPy keeps it per thread (1.x) or per context (2.x).
    settings = np.geterr()

    def under_callers_errstate(item: T) -> R:
        with np.errstate(**settings):
            return fn(item)

    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(under_callers_errstate, item) for item in items]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:  # after a failure, blocks not yet started are not run
                future.cancel()
