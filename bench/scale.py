"""Data larger than memory, measured: a generated Parquet file of several GB trains with
``--max-memory 512MB`` in every framework (exact and SGD), each run a child process whose peak
RSS is read from the kernel (``wait4``), against the same framework's peak RSS on a tiny
dataset; the streamed exact weights against the in-memory exact solve of the same file; and,
on a file that fits, each framework's peak RSS training in memory against the data's size in
the training dtype.

    python bench/scale.py                       # 16M x 32 float64 (4.4 GB), every framework
    python bench/scale.py --rows 2000000 --frameworks numpy,torch    # a quick look

Each framework runs with the interpreter ``dlport compare`` would use (``--python NAME=PATH``
to choose). Writes ``bench/results/<timestamp>-scale.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlport.common.atomic import write_text_atomic  # noqa: E402
from dlport.common.envs import find_python, parse_python_overrides  # noqa: E402
from dlport.common.metrics import max_relative_difference  # noqa: E402
from dlport.common.registry import framework_names  # noqa: E402

ROWS_PER_GROUP = 1 << 17  # 131072 rows x 33 columns: 35 MB per row group


def generate(path: Path, rows: int, cols: int, seed: int = 0) -> None:
    """y = X w + 1.5 + noise(0.1), X standard normal, written a row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=cols)
    names = [f"x{j}" for j in range(cols)] + ["y"]
    schema = pa.schema([(name, pa.float64()) for name in names])
    partial = path.with_suffix(".partial")
    with pq.ParquetWriter(partial, schema, compression="none") as writer:
        for start in range(0, rows, ROWS_PER_GROUP):
            m = min(ROWS_PER_GROUP, rows - start)
            X = rng.normal(size=(m, cols))
            y = X @ weights + 1.5 + 0.1 * rng.normal(size=m)
            writer.write_table(pa.table([*X.T, y], schema=schema), row_group_size=m)
    os.replace(partial, path)


def run(python: Path, args: list[str], env: dict) -> dict:
    """One `dlport train` child: its result, wall time and peak RSS (MB)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        start = time.perf_counter()
        child = subprocess.Popen(
            [str(python), "-m", "dlport", "train", *args, "--json", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        error = child.stderr.read().decode().strip()
        child.stderr.close()
        if os.waitstatus_to_exitcode(status) != 0:
            return {"error": error.splitlines()[-1] if error else f"exit status {status}"}
        result = json.loads(out.read_text())
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "result": result}


def params(result: dict) -> list[float]:
    return [*result["weights"], result["bias"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1 << 24)
    parser.add_argument("--cols", type=int, default=32)
    parser.add_argument("--frameworks", default=",".join(framework_names()))
    parser.add_argument("--max-memory", default="512MB")
    parser.add_argument("--in-memory-rows", type=int, default=4_000_000)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the data goes")
    parser.add_argument("--python", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    data = Path(args.dir) / f"dlport-scale-{args.rows}x{args.cols}.parquet"
    if not data.exists():
        print(f"generating {data} ...", flush=True)
        generate(data, args.rows, args.cols)
    size_gb = data.stat().st_size / 1e9
    print(f"{data}: {size_gb:.2f} GB", flush=True)
    overrides = parse_python_overrides(args.python)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    frameworks = args.frameworks.split(",")
    pythons = {name: find_python(name, overrides) for name in frameworks}
    streamed = ["--data", str(data), "--max-memory", args.max_memory]
    sgd = ["--optimizer", "sgd", "--lr", "0.01", "--batch-size", "8192", "--epochs", "1"]
    rows = {}
    numpy = pythons.get("numpy") or Path(sys.executable)
    # The in-memory exact solve of the same file, the weights the streamed ones must equal.
    reference = run(numpy, ["--data", str(data), "--max-memory", "1TB", "--solver", "exact"], env)
    print(f"in-memory exact (numpy): {summary(reference)}", flush=True)
    for name in frameworks:
        python = pythons[name]
        if python is None:
            rows[name] = {"error": "no environment"}
            continue
        framework = ["--framework", name, "--device", "cpu"]
        row = rows[name] = {
            "tiny": run(python, [*framework, "--data", "diabetes", "--epochs", "1"], env),
            "exact": run(python, [*framework, *streamed, "--solver", "exact"], env),
            "sgd": run(python, [*framework, *streamed, *sgd], env),
        }
        for kind in ("exact", "sgd"):
            print(f"{name} {kind}: {summary(row[kind])}", flush=True)
    # In memory: one epoch of SGD, float64 and float32, on a file that fits.
    small = Path(args.dir) / f"dlport-scale-{args.in_memory_rows}x{args.cols}.parquet"
    if not small.exists():
        generate(small, args.in_memory_rows, args.cols)
    resident = ["--data", str(small), "--max-memory", "1TB", *sgd]
    for name in frameworks:
        if pythons[name] is None:
            continue
        framework = ["--framework", name, "--device", "cpu"]
        rows[name]["in_memory"] = {
            dtype: run(pythons[name], [*framework, *resident, "--dtype", dtype], env)
            for dtype in ("float64", "float32")
        }
        print(f"{name} in memory: {summary(rows[name]['in_memory']['float64'])}", flush=True)
    report = {
        "data": {"path": str(data), "rows": args.rows, "cols": args.cols, "gb": size_gb},
        "in_memory_rows": args.in_memory_rows,
        "max_memory": args.max_memory,
        "in_memory_exact": reference,
        "frameworks": rows,
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"{stamp}-scale.json", json.dumps(report, indent=1) + "\n")
    write_text_atomic(out / f"{stamp}-scale.md", markdown(report))
    print(markdown(report))
    return 0


def summary(run: dict) -> str:
    if "error" in run:
        return f"failed: {run['error']}"
    return f"{run['seconds']:.1f} s, peak RSS {run['peak_rss_mb']:.0f} MB"


def markdown(report: dict) -> str:
    data, reference = report["data"], report["in_memory_exact"]
    lines = [
        f"# Streaming at scale: {data['rows']} x {data['cols']} float64 Parquet "
        f"({data['gb']:.2f} GB on disk), --max-memory {report['max_memory']}",
        "",
        f"In-memory exact solve (numpy, the reference): {summary(reference)}.",
        "SGD: one epoch, batch 8192, lr 0.01. RSS over tiny: peak RSS minus the same "
        "framework's peak RSS training diabetes.",
        "",
        "| framework | tiny RSS MB | exact s | exact RSS MB | over tiny | exact vs in-memory "
        "| SGD s | SGD RSS MB | over tiny | SGD vs numpy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    numpy_sgd = report["frameworks"].get("numpy", {}).get("sgd", {}).get("result")
    for name, row in report["frameworks"].items():
        if "error" in row or any("error" in row[k] for k in ("tiny", "exact", "sgd")):
            why = row.get("error") or next(row[k]["error"] for k in row if "error" in row[k])
            lines.append(f"| {name} | failed: {why} |" + " |" * 8)
            continue
        tiny = row["tiny"]["peak_rss_mb"]
        cells = [name, f"{tiny:.0f}"]
        for kind, against in (("exact", reference.get("result")), ("sgd", numpy_sgd)):
            run = row[kind]
            diff = (
                f"{max_relative_difference(params(run['result']), params(against)):.1e}"
                if against
                else "n/a"
            )
            over = run["peak_rss_mb"] - tiny
            cells += [f"{run['seconds']:.1f}", f"{run['peak_rss_mb']:.0f}", f"{over:+.0f}", diff]
        lines.append("| " + " | ".join(cells) + " |")
    rows, cols = report["in_memory_rows"], data["cols"]
    lines += [
        "",
        f"In memory ({rows} x {cols} + target, --max-memory 1TB, one SGD epoch): peak RSS over "
        "the framework's tiny run, as a multiple of the data's size in the training dtype.",
        "",
        "| framework | float64 over tiny MB | x data (float64) | float32 over tiny MB "
        "| x data (float32) |",
        "|---|---|---|---|---|",
    ]
    for name, row in report["frameworks"].items():
        runs = row.get("in_memory", {})
        if not runs or any("error" in r for r in runs.values()) or "error" in row["tiny"]:
            continue
        cells = [name]
        for dtype, size in (("float64", 8), ("float32", 4)):
            over = runs[dtype]["peak_rss_mb"] - row["tiny"]["peak_rss_mb"]
            cells += [f"{over:+.0f}", f"{over * 1e6 / (rows * (cols + 1) * size):.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
