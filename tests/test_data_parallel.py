"""Data-parallel training (docs/design.md, "Data-parallel training"), in every env: the shards,
and what is refused before any worker starts. The runs themselves are ``data_parallel_suite``,
in the test module of each framework with an engine."""

from __future__ import annotations

import dataclasses

import numpy as np

from dlport.cli.main import main
from dlport.common.batching import epoch_shards, shard
from dlport.common.config import TrainConfig
from dlport.common.conventions import Conventions
from dlport.common.parallel import free_ports
from dlport.compare.parity import FLOAT32_SUMS_TOLERANCE, measure
from dlport.frameworks.numpy.trainer import NumpyTrainer


def test_shards_are_contiguous_and_cover_every_batch():
    order = np.arange(4003)
    parts = [epoch_shards(order, 64, rank, 4) for rank in range(4)]
    assert parts[0][2] == [64] * 62 + [35]
    assert [p[1][-1] for p in parts] == [9, 9, 9, 8]
    assert sorted(np.concatenate([p[0] for p in parts]).tolist()) == order.tolist()
    assert shard(np.arange(64), 1, 4).tolist() == list(range(16, 32))
    assert len(set(free_ports(3))) == 3


def test_a_framework_without_an_engine_is_refused_in_one_line(capsys):
    args = ["train", "--framework", "numpy", "--data", "diabetes", "--workers", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "numpy has no data-parallel engine" in err


def test_compare_holds_an_engine_that_may_round_its_sums_to_that_and_says_so(diabetes):
    result = NumpyTrainer().fit(diabetes, TrainConfig(epochs=2))
    rounded = dataclasses.replace(
        result,
        weights=[w * (1 + 1e-8) for w in result.weights],
        conventions=Conventions(parallel_sum_float32=True).to_dict(),
        timing={**result.timing, "workers": 2},
    )
    parity = measure(rounded, result, result)
    assert parity.passed and parity.tolerance == FLOAT32_SUMS_TOLERANCE
    assert "float32" in parity.engine_note
    one_process = measure(dataclasses.replace(rounded, timing=result.timing), result, result)
    assert not one_process.passed and one_process.engine_note is None
    exact_engine = dataclasses.replace(rounded, conventions=Conventions().to_dict())
    assert not measure(exact_engine, result, result).passed


def test_a_sigkill_is_blamed_before_the_aborts_and_exits_it_causes():
    import signal

    from dlport.common.parallel import _blame

    codes = {0: -signal.SIGABRT, 1: -signal.SIGKILL, 2: 1}  # gloo aborts rank 0 when 1 dies
    assert min(codes, key=lambda rank: _blame(codes[rank], rank)) == 1
    del codes[1]
    assert min(codes, key=lambda rank: _blame(codes[rank], rank)) == 0
