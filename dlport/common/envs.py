"""Running a framework's trainer in that framework's own environment, as a subprocess.

The frameworks' dependency sets conflict, so each runs in its own interpreter (a tox env, or
one given with ``--python NAME=PATH``) and hands back a ``TrainResult`` as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import dlport
from dlport.common.errors import DlportError
from dlport.common.registry import check_name
from dlport.common.results import TrainResult

_PACKAGE_PARENT = Path(dlport.__file__).resolve().parent.parent
# Run from a source checkout, the same source runs in every env (whatever dlport version an env
# installed); installed, each env runs its own copy: never hand one env's site-packages (and
# its numpy) to another.
SOURCE_ROOT = _PACKAGE_PARENT if (_PACKAGE_PARENT / "pyproject.toml").exists() else None


def subprocess_env() -> dict[str, str]:
    """The environment for another env's interpreter: ours, plus this source tree if any."""
    paths = [str(SOURCE_ROOT) if SOURCE_ROOT else None, os.environ.get("PYTHONPATH")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths)))


@dataclass
class Outcome:
    framework: str
    status: str  # "ok" | "missing" | "failed" | "invalid" | "timeout"
    result: TrainResult | None = None
    payload: dict | None = None  # the JSON the subprocess wrote
    reason: str = ""
    fix: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def parse_python_overrides(items: list[str]) -> dict[str, str]:
    overrides = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise DlportError(f"--python takes NAME=PATH, got {item!r}")
        check_name(name)
        overrides[name] = path
    return overrides


def find_python(framework: str, overrides: dict[str, str]) -> Path | None:
    """The interpreter of ``framework``'s env: an override, else .tox/<env>/bin/python."""
    if framework in overrides:
        return Path(overrides[framework])
    env = check_name(framework).tox_env
    for root in filter(None, (Path.cwd(), SOURCE_ROOT)):
        candidate = root / ".tox" / env / "bin" / "python"
        if candidate.exists():
            return candidate
    return None


def run_json(
    framework: str,
    python: Path | None,
    module_args: list[str],
    json_path: Path,
    timeout: float,
) -> Outcome:
    """``<python> -m MODULE ... `` that writes ``json_path``; ``Outcome.payload`` is its JSON."""
    env_name = check_name(framework).tox_env
    fix = f"tox -e {env_name} --notest, or --python {framework}=/path/to/python"
    if python is None:
        return Outcome(framework, "missing", reason=f"no .tox/{env_name} environment", fix=fix)
    if not python.exists():
        return Outcome(framework, "missing", reason=f"{python} does not exist", fix=fix)
    env = subprocess_env()
    json_path.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [str(python), "-m", *module_args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
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
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
        command = " ".join([str(python), "-m", *module_args[:4]])
        return Outcome(
            framework,
            "failed",
            reason=lines[-1],
            seconds=seconds,
            fix=f"run it alone to see all of it: {command} ...",
        )
    try:
        payload = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Outcome(
            framework,
            "invalid",
            reason=f"unusable result: {exc}",
            seconds=seconds,
            fix=f"check that {python} runs this dlport version",
        )
    return Outcome(framework, "ok", payload=payload, seconds=seconds)


def run_train(
    framework: str, python: Path | None, train_args: list[str], json_path: Path, timeout: float
) -> Outcome:
    """``<python> -m dlport train --framework F ... --json FILE``, judged by what comes back."""
    args = ["dlport", "train", "--framework", framework, *train_args, "--json", str(json_path)]
    outcome = run_json(framework, python, args, json_path, timeout)
    if not outcome.ok:
        return outcome
    try:
        outcome.result = TrainResult.from_dict(outcome.payload)
    except DlportError as exc:
        outcome.status, outcome.reason = "invalid", f"unusable result: {exc}"
        return outcome
    if outcome.result.framework != framework:
        outcome.status = "invalid"
        outcome.reason = f"result is from {outcome.result.framework!r}, not {framework!r}"
    return outcome
