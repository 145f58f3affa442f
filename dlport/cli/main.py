"""`dlport`: parse, run the command, one-line errors and exit codes."""

from __future__ import annotations

import os
import signal
import sys

from dlport.cli.output import reader_gone
from dlport.cli.parser import build_parser
from dlport.common.errors import DlportError, Interrupted
from dlport.common.hugepages import avoid_hugepage_stalls


def main(argv: list[str] | None = None) -> int:
    avoid_hugepage_stalls()
    terminated = False

    def on_sigterm(signum, frame):
        # Stop as on Ctrl-C (train saves its last complete epoch; compare and bench end their
        # children), but exit 143. A second SIGTERM gets the previous handler: ends it at once.
        nonlocal terminated
        terminated = True
        signal.signal(signal.SIGTERM, previous)
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGTERM)
    if previous is None:  # set outside Python: restore the default
        previous = signal.SIG_DFL
    try:
        signal.signal(signal.SIGTERM, on_sigterm)
        installed = True
    except ValueError:  # not the main thread: leave signals to whoever runs us
        installed = False
    args = before = None
    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # as given: workers rerun it
        before = _file_state(getattr(args, "checkpoint", None))
        code = args.func(args)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except DlportError as exc:
        print(f"dlport: error: {exc}", file=sys.stderr)
        if isinstance(exc, Interrupted) and terminated:
            return 128 + signal.SIGTERM
        return exc.exit_code
    except BrokenPipeError:  # the reader went away (`| head`): a normal end, files are written
        reader_gone(sys.stdout)
        return 0
    except OSError as exc:  # a path the user gave cannot be written or read
        where = exc.filename or _output_paths(args) or "an output path"
        print(
            f"dlport: error: cannot use {where} ({exc.strerror or exc}); give another path",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        how = "terminated (SIGTERM)" if terminated else "interrupted"
        command = getattr(args, "command", None)
        if command != "train":
            print(f"dlport: {how}; {command or 'dlport'} stopped", file=sys.stderr)
        elif _file_state(args.checkpoint) != before:  # fit had ended and written it
            print(f"dlport: {how}; checkpoint written to {args.checkpoint}", file=sys.stderr)
        else:  # fitting saves the last complete epoch itself (Interrupted) when there is one
            print(f"dlport: {how} before the first epoch ended; nothing saved", file=sys.stderr)
        return 128 + signal.SIGTERM if terminated else 130
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous)


def _file_state(path: str | None):
    """(size, mtime) of ``path``, None if absent: whether this run wrote it."""
    try:
        stat = os.stat(path) if path else None
    except OSError:
        return None
    return stat and (stat.st_size, stat.st_mtime_ns)


def _output_paths(args) -> str:
    """The paths this command writes, as given: what an OSError naming no file is about."""
    given = [(o, getattr(args, o, None)) for o in ("out", "json", "checkpoint")]
    return ", ".join(f"--{o} {v}" for o, v in given if isinstance(v, str) and v != "-")
