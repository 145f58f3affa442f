"""The framework under test is chosen per run by DLPORT_FRAMEWORK (set by tox), as einops does;
NumPy is the reference every framework is compared against."""

from __future__ import annotations

import os
import tempfile

import pytest

from dlport.common.data import load_dataset
from dlport.common.registry import FRAMEWORKS, get_trainer
from dlport.frameworks.numpy.trainer import NumpyTrainer

FRAMEWORK = os.environ.get("DLPORT_FRAMEWORK", "numpy")
# A framework's env runs the tests of that framework; the framework-free ones run in core, and
# again where tox asks (the MXNet env: dlport/common on numpy 1.x).
FRAMEWORK_FREE_TESTS = FRAMEWORK == "numpy" or os.environ.get("DLPORT_FRAMEWORK_FREE_TESTS") == "1"
# The user's own framework envs (`dlport env create`) must not stand in for the ones a test
# sets up: every test sees an empty envs folder unless it makes one.
os.environ["DLPORT_ENVS"] = tempfile.mkdtemp(prefix="dlport-test-envs-")


def pytest_report_header(config):
    return f"dlport framework under test: {FRAMEWORK} (DLPORT_FRAMEWORK)"


def tests_the_framework(item: pytest.Item) -> bool:
    """A test of the framework under test: it uses ``trainer`` (directly or through another
    fixture), is marked ``framework``, or is in that framework's own module."""
    return (
        "trainer" in item.fixturenames
        or item.get_closest_marker("framework") is not None
        or item.path.parent.name == "frameworks"
    )


def pytest_collection_modifyitems(config, items):
    if FRAMEWORK_FREE_TESTS:
        return
    framework_free = [item for item in items if not tests_the_framework(item)]
    if framework_free:
        config.hook.pytest_deselected(items=framework_free)
        items[:] = [item for item in items if tests_the_framework(item)]


@pytest.fixture(scope="session")
def trainer():
    return get_trainer(FRAMEWORK)


@pytest.fixture(scope="session")
def reference(trainer):
    """The NumPy reference following the framework's own conventions (e.g. Adam's eps)."""
    return NumpyTrainer(conventions=trainer.conventions)


@pytest.fixture(scope="session")
def diabetes():
    return load_dataset("diabetes")


# Framework-specific tests run only in their own env (no skips elsewhere). The registry's dict,
# not a function of it: mutmut's forced-fail check makes every dlport function raise, and this
# module is imported again by each pytest run.
collect_ignore_glob = [
    f"frameworks/test_{name.replace('-', '_')}.py" for name in FRAMEWORKS if name != FRAMEWORK
]
# The end-to-end run needs every framework env built: the `e2e` tox env sets DLPORT_E2E.
if not os.environ.get("DLPORT_E2E"):
    collect_ignore_glob.append("e2e/*")
