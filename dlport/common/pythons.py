"""Which Python versions each framework can run on, and why not where it cannot.

Plain data, importing nothing of dlport: tox's inline plugin (toxfile.py) loads this file by
path, in tox's own interpreter, to skip an env that cannot exist on that Python.
"""

from __future__ import annotations

# framework -> (first Python it cannot run on, the one-line reason and fix)
UNSUPPORTED_FROM: dict[str, tuple[tuple[int, int], str]] = {
    "mxnet": (
        (3, 13),
        "MXNet 1.9.1 (the last release) requires numpy < 2, which has no wheels for Python "
        ">= 3.13 (forced onto numpy 2 it needs ~20 removed numpy names back and still fails on "
        "shapes given as numpy integers); run MXNet on Python 3.10-3.12",
    ),
}


def unsupported_reason(framework: str, version_info) -> str | None:
    """Why ``framework`` cannot run on Python ``version_info``, or None if it can."""
    first, reason = UNSUPPORTED_FROM.get(framework, ((99, 0), ""))
    if tuple(version_info[:2]) >= first:
        return f"{framework} on Python {version_info[0]}.{version_info[1]}: {reason}"
    return None
