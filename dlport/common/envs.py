"""Running a framework's trainer in that framework's own environment, as a subprocess.

The frameworks' dependency sets conflict, so each runs in its own interpreter (a tox env, or
one given with ``--python NAME=PATH``) and hands back a ``TrainResult`` as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dlport
from dlport.common.errors import DlportError
from dlport.common.pythons import unsupported_reason
from dlport.common.registry import check_name
from dlport.common.results import TrainResult
from dlport.common.user_envs import envs_home, find_env_python

_PACKAGE_PARENT = Path(dlport.__file__).resolve().parent.parent
# Run from a source checkout, the same source runs in every env (whatever dlport version an env
# installed); installed, each env runs its own copy: never hand one env's site-packages (and
# its numpy) to another.
SOURCE_ROOT = _PACKAGE_PARENT if (_PACKAGE_PARENT / "pyproject.toml").exists() else None

# What a child interpreter runs, after `-E` (which ignores PYTHONPATH, PYTHONHOME and every
# other PYTHON* variable of this env). `-c` puts the working directory first on sys.path, where
# a stray numpy.py would shadow numpy: drop it before importing anything (what -P does, but -P
# needs Python 3.11 and dlport supports 3.10; -I would also hide the user site-packages, where a
# --python interpreter may keep its framework). Then this source tree, if dlport runs from one.
_BOOTSTRAP = (
    "import sys\n"
    "if sys.path[:1] == ['']: del sys.path[0]\n"
    "root, module = sys.argv[1:3]\n"
    "del sys.argv[1:3]\n"
    "if root: sys.path.insert(0, root)\n"
    "import runpy\n"
    "runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
)


def child_command(python: Path, module: str, args: list[str]) -> list[str]:
    """``python -m module args``, isolated from this env and from the working directory."""
    return [str(python), "-E", "-c", _BOOTSTRAP, str(SOURCE_ROOT or ""), module, *args]


def subprocess_env() -> dict[str, str]:
    """The environment for another env's interpreter: ours, without this env's Python paths
    (they name its site-packages, or anything the user put there), plus this source tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    if SOURCE_ROOT:
        env["PYTHONPATH"] = str(SOURCE_ROOT)
    return env


@dataclass
class Outcome:
    framework: str
    status: str  # "ok" | "missing" | "failed" | "invalid" | "timeout"
    result: TrainResult | None = None
    payload: dict | None = None  # the JSON the subprocess wrote
    reason: str = ""
    fix: str = ""
    seconds: float = 0.0
    python: Path | None = None  # the interpreter that ran it

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def invalid(self, reason: str) -> Outcome:
        """Ran, but what came back is not the run asked for."""
        self.status, self.reason, self.result = "invalid", reason, None
        self.fix = f"check that {self.python} runs this dlport version"
        return self


def parse_python_overrides(items: list[str]) -> dict[str, str]:
    overrides = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise DlportError(f"--python takes NAME=PATH, got {item!r}")
        check_name(name)
        overrides[name] = path
    return overrides


def project_roots() -> list[Path]:
    """Where the frameworks' .tox envs are: this checkout, and the project whose tox env runs
    dlport (`tox -e compare` runs it installed). Never the working directory: a .tox there is
    whatever happens to be there."""
    roots = [SOURCE_ROOT] if SOURCE_ROOT else []
    prefix = Path(sys.prefix)
    if prefix.parent.name == ".tox" and prefix.parent.parent not in roots:
        roots.append(prefix.parent.parent)
    return roots


def find_python(framework: str, overrides: dict[str, str]) -> Path | None:
    """The interpreter of ``framework``'s env: ``--python``, else the user's env (``dlport env
    create``), else <project>/.tox/<env>/bin/python in a source checkout."""
    if framework in overrides:
        return Path(overrides[framework]).absolute()  # children run in another directory
    created = find_env_python(framework)
    if created:
        return created
    env = check_name(framework).tox_env
    for root in project_roots():
        candidate = root / ".tox" / env / "bin" / "python"
        if candidate.exists():
            return candidate
    return None


def _run_group(command: list[str], timeout: float) -> tuple[int, str]:
    """Run ``command`` in a session of its own, from an empty directory, and on its exit,
    timeout or Ctrl-C kill everything it started, grandchildren included."""
    with (
        tempfile.TemporaryDirectory(prefix="dlport-child-") as cwd,
        subprocess.Popen(
            command,
            cwd=cwd,  # a stray file here cannot shadow a module, nor be left in the user's cwd
            env=subprocess_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C reaches only us; we end the whole group
        ) as proc,
    ):
        try:
            _, stderr = proc.communicate(timeout=timeout)
        finally:
            # SIGKILL: a child of compare or bench is rerun, never resumed, so it gets no
            # chance to write an interrupt checkpoint. Suppressed: the group has already ended.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, stderr


def run_json(
    framework: str,
    python: Path | None,
    module_args: list[str],
    json_path: Path,
    timeout: float,
) -> Outcome:
    """``<python> -m MODULE ARGS`` that writes ``json_path``; ``Outcome.payload`` is its JSON."""
    env_name = check_name(framework).tox_env
    tox = f"tox -e {env_name} --notest, or " if project_roots() else ""
    fix = f"dlport env create {framework}, or {tox}--python {framework}=/path/to/python"
    unsupported = unsupported_reason(framework, sys.version_info)
    if python is None and unsupported:  # tox skipped its env on this Python, and said why
        fix = (
            f"dlport env create {framework} --python PATH, or --python {framework}=PATH, "
            "PATH a Python it supports"
        )
        return Outcome(framework, "missing", reason=unsupported, fix=fix)
    if python is None:
        places = [envs_home() / framework, *(r / ".tox" / env_name for r in project_roots())]
        reason = f"no {framework} environment ({' or '.join(map(str, places))})"
        return Outcome(framework, "missing", reason=reason, fix=fix)
    if not python.exists():
        return Outcome(framework, "missing", reason=f"{python} does not exist", fix=fix)
    json_path.unlink(missing_ok=True)
    module, *args = module_args
    start = time.perf_counter()
    try:
        returncode, stderr = _run_group(child_command(python, module, args), timeout)
    except subprocess.TimeoutExpired:
        return Outcome(
            framework,
            "timeout",
            reason=f"no result within {timeout:g} s",
            fix="raise --timeout",
            seconds=time.perf_counter() - start,
        )
    except OSError as exc:
        return Outcome(framework, "missing", reason=f"cannot run {python} ({exc})", fix=fix)
    seconds = time.perf_counter() - start
    if returncode != 0:
        lines = stderr.strip().splitlines() or [f"exit code {returncode}"]
        command = " ".join([str(python), "-m", *module_args[:4]])
        return Outcome(
            framework,
            "failed",
            reason=lines[-1],
            seconds=seconds,
            fix=f"run it alone to see all of it: {command} ...",
        )
    outcome = Outcome(framework, "ok", seconds=seconds, python=python)
    try:
        outcome.payload = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return outcome.invalid(f"unusable result: {exc}")
    return outcome


def run_train(
    framework: str, python: Path | None, train_args: list[str], json_path: Path, timeout: float
) -> Outcome:
    """``<python> -m dlport train --framework F ... --json=FILE``, judged by what comes back.

    Paths go as ``--opt=VALUE`` and absolute: a value starting with '-' is then no option, and
    the child runs in another directory."""
    args = ["dlport", "train", f"--framework={framework}", *train_args, f"--json={json_path}"]
    outcome = run_json(framework, python, args, json_path, timeout)
    if not outcome.ok:
        return outcome
    try:
        outcome.result = TrainResult.from_dict(outcome.payload)
    except DlportError as exc:
        return outcome.invalid(f"unusable result: {exc}")
    if outcome.result.framework != framework:
        return outcome.invalid(f"result is from {outcome.result.framework!r}, not {framework!r}")
    return outcome
