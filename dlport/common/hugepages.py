"""NumPy's transparent huge pages, off in the processes dlport starts.

NumPy asks the kernel for huge pages on every large array (``madvise(MADV_HUGEPAGE)``). Where
the kernel answers that by compacting memory on the spot (``defrag`` set to ``madvise``, the
common default) and memory is fragmented, as after reading a large file, a fresh array's first
touch stalls: 1.05 s for a 400 MB array here against 0.15 s without the advice, more than
the arithmetic of the pass that fills it (docs/design.md, "Large arrays and the kernel's huge
pages").
"""

from __future__ import annotations

import os

VARIABLE = "NUMPY_MADVISE_HUGEPAGE"  # NumPy's own switch, read when numpy is imported


def avoid_hugepage_stalls() -> None:
    """Turn NumPy's huge-page advice off here and in the children this process starts, unless
    the user set NumPy's own switch (then theirs holds)."""
    if VARIABLE in os.environ:
        return
    os.environ[VARIABLE] = "0"
    set_advice(False)


def set_advice(on: bool) -> bool:
    """NumPy's own setter (documented with ``NUMPY_MADVISE_HUGEPAGE``); returns the state it
    replaced."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _set_madvise_hugepage
    return bool(_set_madvise_hugepage(on))
