"""Reading a large numeric CSV: ``load_dataset`` (pyarrow.csv from the file, its import
counted) against dlport's Python csv-module parser (the loader before pyarrow, and today the
parser of what pyarrow refuses), on the same file in the page cache.

    python bench/csv_read.py            # generates /tmp/dlport-1gb.csv (5M x 11) if missing
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    path = Path(tempfile.gettempdir()) / "dlport-1gb.csv"
    if not path.exists():
        rng = np.random.default_rng(0)
        with open(path, "w") as fh:
            fh.write(",".join([f"x{j}" for j in range(10)] + ["y"]) + "\n")
            for _ in range(10):
                np.savetxt(fh, rng.normal(size=(500_000, 11)), delimiter=",", fmt="%.17g")
    path.read_bytes()  # into the page cache, for both readers alike
    from dlport.common import data
    from dlport.common.hugepages import avoid_hugepage_stalls

    avoid_hugepage_stalls()  # as `dlport train` runs

    runs = []
    for _ in range(3):
        start = time.perf_counter()
        new = data.load_dataset(str(path), max_memory="1TB")
        runs.append(time.perf_counter() - start)
    start = time.perf_counter()
    header, values = data._parse_csv(data._read_file(path), str(path))
    old = data._from_columns(header, values, str(path), None)
    python_csv = time.perf_counter() - start
    assert (old.X == new.X).all() and (old.y == new.y).all()
    fast = statistics.median(runs)
    print(
        f"{path.stat().st_size / 1e9:.2f} GB: load_dataset {fast:.2f} s (median of "
        f"{', '.join(f'{r:.2f}' for r in runs)}); Python's csv module {python_csv:.2f} s; "
        f"{python_csv / fast:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
