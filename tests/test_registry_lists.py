"""The registry is the one list of frameworks: tox.ini (which cannot import Python) and
pyproject's extras are checked against it, so no list can drift."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import tomllib

from dlport.common.registry import FRAMEWORKS, tox_envs

ROOT = Path(__file__).resolve().parents[1]


def _tox() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini")
    return parser


def _env_lists(command: str) -> list[list[str]]:
    """Each framework env list an inner tox/dlport command names: `-e a,b` or `:a,b}`."""
    return [m.split(",") for m in re.findall(r"(?:-e |DLPORT_FRAMEWORKS:)([\w,-]+)", command)]


def test_the_default_envlist_holds_every_framework_env():
    envlist = [e.strip() for e in _tox()["tox"]["envlist"].split(",")]
    assert [e for e in envlist if e in tox_envs() or e == "core"] == ["core", *tox_envs()]


def test_compare_e2e_and_bench_build_and_run_the_registry_envs():
    tox = _tox()
    for section in ("testenv:compare", "testenv:e2e", "testenv:bench"):
        lists = _env_lists(tox[section]["commands"])
        assert lists, section
        assert all(names == tox_envs() for names in lists), (section, lists)


def test_each_framework_env_sets_its_framework_and_installs_its_extra():
    testenv = _tox()["testenv"]
    settings = dict(
        re.findall(r"^\s*([\w!-]+): DLPORT_FRAMEWORK = ([\w-]+)$", testenv["setenv"], re.M)
    )
    extras = dict(re.findall(r"^\s*([\w!-]+): ([\w-]+)$", testenv["extras"], re.M))
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = optional["optional-dependencies"]
    for name, entry in FRAMEWORKS.items():
        # The condition that sets it names the env's factors (keras-jax, or jax-!keras).
        conditions = [c for c, framework in settings.items() if framework == name]
        assert len(conditions) == 1, name
        positive = [f for f in conditions[0].split("-") if not f.startswith("!")]
        assert "-".join(positive) == entry.tox_env, (name, conditions)
        if entry.extra:
            assert entry.extra in optional, name
            assert entry.extra in extras.values() or name == "tensorflow", name
