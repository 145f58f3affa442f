"""Data-parallel training (docs/design.md, "Data-parallel training"), in every env: the shards,
and what is refused before any worker starts. The runs themselves are ``data_parallel_suite``,
in the test module of each framework with an engine."""

from __future__ import annotations

import numpy as np

from dlport.cli.main import main
from dlport.common.parallel import epoch_shards, free_ports, shard


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
