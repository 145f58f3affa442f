"""Shared code's documented edges, each pinned by its exact result.

- ``stream_windows`` (docs/design.md, "Data larger than memory"): the shuffled blocks are
  grouped into windows of *at most* ``window_rows`` rows, so a window may be exactly full, and
  every window, not only the first, starts counting its rows from zero.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlport.common.batching import stream_windows


@pytest.mark.parametrize("blocks", [2, 4, 6])
def test_stream_windows_fill_each_window_up_to_exactly_its_row_limit(blocks):
    windows = stream_windows((2,) * blocks, 4, seed=3, epoch=1)
    assert [len(ids) for ids, _ in windows] == [2] * (blocks // 2)
    assert sorted(b for ids, _ in windows for b in ids) == list(range(blocks))
    for _, perm in windows:
        assert perm.dtype == np.int64 and sorted(perm.tolist()) == [0, 1, 2, 3]


def test_stream_windows_start_a_new_window_only_past_the_limit():
    # Blocks of 3 rows under a 5-row limit: never two in one window.
    windows = stream_windows((3, 3, 3), 5, seed=0, epoch=0)
    assert [len(ids) for ids, _ in windows] == [1, 1, 1]
    # One block over the limit still forms its window alone.
    assert [ids for ids, _ in stream_windows((7,), 5, seed=0, epoch=0)] == [(0,)]
