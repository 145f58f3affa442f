"""tox's inline plugin: an env whose framework cannot run on its Python is skipped, with the
reason, instead of failing its install (dlport/common/pythons.py holds the reasons)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tox.plugin import impl
from tox.tox_env.errors import Skip

_spec = importlib.util.spec_from_file_location(
    "dlport_pythons", Path(__file__).parent / "dlport" / "common" / "pythons.py"
)
pythons = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pythons)


def _skip_if_unsupported(tox_env) -> None:
    set_env = tox_env.conf["set_env"]
    if "DLPORT_FRAMEWORK" not in set_env:
        return
    framework = set_env.load("DLPORT_FRAMEWORK")
    reason = pythons.unsupported_reason(framework, tox_env.base_python.version_info)
    if reason:
        raise Skip(reason)


@impl
def tox_on_install(tox_env, arguments, section, of_type) -> None:
    _skip_if_unsupported(tox_env)  # before the first install step: nothing is downloaded


@impl
def tox_before_run_commands(tox_env) -> None:
    _skip_if_unsupported(tox_env)
