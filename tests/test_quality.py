"""compare's quality verdict (dlport/compare/quality.py), at each of its edges; the report's
"vs optimum" cell."""

from __future__ import annotations

import dataclasses

import pytest

from dlport.common.config import TrainConfig
from dlport.compare.quality import quality
from dlport.compare.report import _vs_optimum
from dlport.frameworks.numpy.trainer import NumpyTrainer


@pytest.fixture(scope="module")
def result(diabetes):
    return NumpyTrainer().fit(diabetes, TrainConfig(epochs=2))


def run(result, loss, mse=2.0, r2=0.5):
    metrics = dict(result.metrics, mse=mse, r2=r2)
    return dataclasses.replace(result, history={"loss": loss}, metrics=metrics)


@pytest.mark.parametrize(
    ("loss", "mse", "r2", "expected"),
    [
        ([1.0, 0.5], 2.0, 0.5, "ok"),
        ([1.0, 2.0], 2.0, 0.5, "ok"),  # doubled exactly: not yet diverged
        ([1.0, 2.0000001], 2.0, 0.5, "diverged"),
        ([3.0], 2.0, -1.0, "ok"),  # r2 exactly -1: not yet diverged
        ([], 2.0, -1.0000001, "diverged"),  # the exact solver: no loss curve, r2 decides
        ([1.0, 0.5], 2.02, 0.5, "ok"),  # 1% above the optimum, exactly
        ([1.0, 0.5], 2.0201, 0.5, "far"),
    ],
    ids=["ok", "doubled", "grew", "r2-edge", "r2-exact-solver", "far-edge", "far"],
)
def test_quality_edges(result, loss, mse, r2, expected):
    assert quality(run(result, loss, mse, r2), optimum_mse=2.0) == expected


def test_the_real_run_trains_ok_against_its_own_optimum(result):
    assert quality(result, result.metrics["mse"]) == "ok"
    assert quality(result, result.metrics["mse"] / 2) == "far"


@pytest.mark.parametrize(
    ("mse", "optimum", "cell"),
    [
        (2.0, 2.0, "+0.000%"),
        (3.0, 2.0, "+50.000%"),
        (19.9, 2.0, "+895.000%"),
        (20.0, 2.0, "10x"),
        (6.35e73, 2.0, "3.18e+73x"),
        (0.0, 0.0, "+0.000%"),
        (1.0, 0.0, "infx"),
    ],
    ids=["equal", "half-more", "under-10x", "10x", "huge", "both-zero", "zero-optimum"],
)
def test_vs_optimum_is_a_percentage_then_a_factor(mse, optimum, cell):
    assert _vs_optimum(mse, optimum) == cell
