"""Per-user framework environments: ``dlport env create|list|remove NAME``.

The frameworks' dependencies conflict, so each gets a venv of its own, under the user's data
directory (platformdirs; ``DLPORT_ENVS`` overrides it), holding ``dlport[<extra>]`` with that
extra's pins (MXNet's numpy < 1.24). compare and bench find them there, so they work from any
folder, not only from a source checkout's ``.tox``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dlport
from dlport.common.errors import DlportError
from dlport.common.progress import progress_bar
from dlport.common.pythons import unsupported_reason
from dlport.common.registry import check_name

MARKER = "dlport-env.json"  # written last: a folder without it is not a finished env


def envs_home() -> Path:
    override = os.environ.get("DLPORT_ENVS")
    if override:
        return Path(override).absolute()
    import platformdirs

    return Path(platformdirs.user_data_dir("dlport")) / "envs"


def find_env_python(framework: str) -> Path | None:
    """A finished env's interpreter, None where there is none."""
    folder = envs_home() / framework
    python = folder / "bin" / "python"
    return python if (folder / MARKER).is_file() and python.exists() else None


# What `dlport env create --with` may add to a framework's env (pyproject's extras).
OPTIONAL_EXTRAS = ("mlflow", "onnx", "sklearn", "plot", "cli")


def requirement(framework: str, source: str | None = None, also=()) -> str:
    """What pip installs: dlport with the framework's extra and ``also`` (``OPTIONAL_EXTRAS``:
    ``compare --track`` needs mlflow in every framework's env), from ``source`` (a folder or
    wheel), else this source tree from a checkout, else this version from the package index."""
    from dlport.common.envs import SOURCE_ROOT

    unknown = sorted(set(also) - set(OPTIONAL_EXTRAS))
    if unknown:
        raise DlportError(
            f"--with {','.join(unknown)}: not an extra of dlport; choose from "
            f"{', '.join(OPTIONAL_EXTRAS)}"
        )
    names = [name for name in (check_name(framework).extra, *also) if name]
    extras = f"[{','.join(names)}]" if names else ""
    origin = source or SOURCE_ROOT
    if origin:
        return f"dlport{extras} @ {Path(origin).absolute().as_uri()}"
    return f"dlport{extras}=={dlport.__version__}"


def _python_version(python: str) -> tuple[int, int]:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        major, minor = map(int, out.split())
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise DlportError(
            f"cannot run --python {python} ({exc}); give a Python 3 interpreter"
        ) from None
    return major, minor


def create(
    framework: str, python: str | None = None, pip_args=(), source=None, also=(), *, progress=False
) -> Path:
    """Build ``framework``'s env from scratch (replacing one there) with ``python`` (default:
    this interpreter), atomically: a failed build leaves the previous env, or nothing."""
    entry = check_name(framework)
    python = python or sys.executable
    version = _python_version(python)
    wanted = requirement(framework, source, also)
    unsupported = unsupported_reason(framework, version)
    if unsupported:
        raise DlportError(f"{unsupported}; give another interpreter with --python")
    home = envs_home()
    home.mkdir(parents=True, exist_ok=True)
    final, partial = home / framework, home / f".{framework}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    steps = [
        ([python, "-m", "venv", str(partial)], "creating the venv"),
        (
            [str(partial / "bin" / "python"), "-m", "pip", "install", "--upgrade", "pip"],
            "upgrading pip",
        ),
        (
            [str(partial / "bin" / "python"), "-m", "pip", "install", *pip_args, wanted],
            f"installing {wanted}",
        ),
    ]
    try:
        with progress_bar(len(steps), f"env {framework}", progress) as bar:
            for command, what in steps:
                _run(command, f"{framework}: {what}", bar)
                bar.advance()
        marker = {
            "framework": framework,
            "extra": entry.extra,
            "python": ".".join(map(str, version)),
            "requirement": wanted,
            "pip_args": list(pip_args),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (partial / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final / "bin" / "python"


def _run(command: list[str], label: str, bar) -> None:
    """Run one build step; its latest output line shows beside the bar on a terminal."""
    lines: list[str] = []
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        lines.append(line.rstrip())
        bar.status(line.strip()[:60])
    code = process.wait()
    if code != 0:
        errors = [line for line in lines if "error" in line.lower()] or lines or ["no output"]
        raise DlportError(f"{label} failed (exit {code}): {errors[-1].strip()}")


def listed() -> list[dict]:
    """Every finished env: its marker, plus where it is."""
    home = envs_home()
    found = []
    for folder in sorted(home.iterdir()) if home.is_dir() else []:
        marker = folder / MARKER
        if marker.is_file():
            found.append(json.loads(marker.read_text()) | {"path": str(folder)})
    return found


def remove(framework: str) -> Path:
    check_name(framework)
    folder = envs_home() / framework
    if not folder.is_dir():
        raise DlportError(
            f"no env for {framework} under {envs_home()}; `dlport env list` shows them"
        )
    shutil.rmtree(folder)
    return folder
