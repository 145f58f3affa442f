"""MXNet 1.9.1 on numpy 1.24-1.26, the numpy of Python 3.12 (numpy 1.23 has no 3.12 wheels).

MXNet reaches libmxnet through ctypes, not numpy's C API, so a newer numpy 1.x works once the
one removed name MXNet's import and array code read is back: ``numpy.bool``, an alias of the
builtin ``bool`` (deprecated in numpy 1.20, removed in 1.24; ``mxnet/numpy/utils.py`` reads it
at import, and mx.np's dtype tables and boolean indexing use it). MXNet 1.9.1's other uses of
removed aliases (``np.int`` in ``mxnet/test_utils.py``) are in code dlport never imports, so
nothing else is set. numpy < 1.24 still has the alias, and numpy 2 has ``numpy.bool`` again
(as ``numpy.bool_``), so there this changes nothing.

Python 3.12 also removed ``distutils``, whose ``LooseVersion`` MXNet imports: the ``mxnet``
extra installs setuptools there, whose ``distutils`` shim provides it.

Called by the MXNet trainer's module before ``import mxnet``: only a process that trains with
MXNet is touched.
"""

from __future__ import annotations

import warnings

import numpy as np


def restore_numpy_aliases() -> list[str]:
    """Set the aliases MXNet needs that this numpy lacks; returns the names it set."""
    with warnings.catch_warnings():
        # numpy 1.20-1.23 warn on access; 1.24-1.26 warn that the name will return, then raise.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        missing = not hasattr(np, "bool")
    if missing:
        np.bool = bool
        return ["bool"]
    return []
