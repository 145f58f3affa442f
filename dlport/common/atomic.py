"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Only regular files are replaced, keeping their mode; through a symlink, its final target is.
Anything else is written through: replacing /dev/null or a named pipe would swap the node for a
regular file, and replacing our own stdout (/dev/stdout, or ``> file``) would cut the output
printed around it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from pathlib import Path

from dlport.common.errors import DlportError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    try:
        try:
            st = os.stat(path)  # follows symlinks, /dev/stdout's /proc magic link included
        except FileNotFoundError:
            st = None
        fd = _std_descriptor(st)
        if fd is not None:
            for stream in filter(None, (sys.stdout, sys.stderr)):  # what was printed comes first
                stream.flush()
            with os.fdopen(fd, "wb", closefd=False) as fh:
                fh.write(data)
        elif st is not None and stat.S_ISBLK(st.st_mode):
            raise DlportError(f"{os.fspath(path)} is a block device; give a file path")
        elif st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            with open(path, "wb") as fh:  # a character device, a FIFO
                fh.write(data)
        else:
            _replace(Path(os.path.realpath(path)), data, st)
    except OSError as exc:  # name the user's path, not the temporary file (or no file at all)
        raise OSError(exc.errno, exc.strerror, os.fspath(path)) from None


def _std_descriptor(st: os.stat_result | None) -> int | None:
    """1 or 2 when ``st`` is this process's stdout or stderr."""
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            if st is not None and os.path.samestat(st, os.fstat(fd)):
                return fd
    return None


def _replace(target: Path, data: bytes, st: os.stat_result | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        if st is not None:  # the new file keeps the old one's owner, where we may set it
            with contextlib.suppress(OSError):
                os.chown(tmp, st.st_uid, st.st_gid)
        # mkstemp makes 0600: an existing file keeps its mode, a new one gets the usual one.
        os.chmod(tmp, stat.S_IMODE(st.st_mode) if st else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))
