"""`dlport bench`: the worker's figures, the summary's ratios and targets, failures reported."""

from __future__ import annotations

import json

import pytest

from dlport.bench.harness import Measurement, summarize
from dlport.bench.worker import measure
from dlport.cli import main


def test_worker_measures_the_reference_and_the_numpy_baselines():
    figures = measure("numpy", "tiny", "cpu", "float32", repeats=2)
    assert figures["status"] == "ok"
    trainer = figures["trainer"]
    assert len(trainer["steps_per_second"]) == 2 and min(trainer["steps_per_second"]) > 0
    assert trainer["ttq_reached"] and all(e >= 1 for e in trainer["ttq_epochs"])
    assert len(figures["numpy_loop"]["samples_per_second"]) == 2
    assert len(trainer["exact_seconds"]) == 2 and len(figures["xtx_seconds"]) == 2
    assert figures["peak_rss_mb"] > 0


def _figures(framework, sps, idiomatic=None, loop=None):
    figures = {
        "framework_version": "1",
        "dtype": "float32",
        "tf32": False,
        "peak_rss_mb": 100.0,
        "trainer": {
            "samples_per_second": sps,
            "steps_per_second": sps,
            "warmup_seconds": [0.1],
            "ttq_seconds": [1.0],
            "ttq_epochs": [2],
            "ttq_reached": True,
            "exact_seconds": [0.5],
        },
    }
    if idiomatic:
        figures["idiomatic"] = {"samples_per_second": idiomatic}
    if loop:
        figures["numpy_loop"] = {"samples_per_second": loop}
        figures["lstsq_seconds"] = [0.01]
        figures["xtx_seconds"] = [0.2]
    return figures


def test_summary_takes_medians_and_same_run_ratios():
    rows = summarize(
        [
            Measurement("numpy", "medium", "cpu", "ok", _figures("numpy", [5.0], loop=[9, 10, 50])),
            Measurement(
                "torch", "medium", "cpu", "ok", _figures("torch", [1, 4, 6], idiomatic=[1.0])
            ),
            Measurement("torch", "medium", "gpu", "ok", _figures("torch", [40.0])),
            Measurement("mxnet", "medium", "cpu", "failed", reason="boom"),
        ]
    )
    torch_cpu = rows[1]
    assert torch_cpu["samples_per_second"] == {"median": 4, "min": 1, "max": 6}
    assert torch_cpu["vs_numpy_loop"] == pytest.approx(0.4)  # 4 / median(9, 10, 50)
    assert torch_cpu["vs_idiomatic"] == pytest.approx(4.0)
    assert torch_cpu["targets"] == {">= 0.5x numpy loop": False, ">= 5x idiomatic": False}
    assert rows[2]["vs_cpu"] == pytest.approx(10.0) and rows[2]["targets"] == {}
    assert rows[3]["status"] == "failed" and rows[3]["reason"] == "boom"


def test_at_scale_time_to_quality_and_the_exact_solve_are_held_to_the_numpy_baselines():
    # large: n = 2,000,000; the NumPy loop at 4M samples/s takes 0.5 s an epoch, so the 2
    # epochs to quality take it 1 s; the exact solve's 0.5 s is 2.5x X^T X's 0.2 s.
    loop = _figures("numpy", [4e6], loop=[4e6])
    torch = _figures("torch", [2e6])
    rows = summarize(
        [
            Measurement("numpy", "large", "cpu", "ok", loop),
            Measurement("torch", "large", "cpu", "ok", torch),
        ]
    )
    assert rows[1]["ttq_vs_loop"] == pytest.approx(1.0)  # ttq 1.0 s over the loop's 1 s
    assert rows[1]["exact_vs_xtx"] == pytest.approx(2.5)
    assert rows[1]["targets"] == {
        ">= 0.8x numpy loop": False,
        "ttq <= 1.5x loop": True,
        "exact <= 2x XtX": False,
    }


def test_bench_cli_reports_a_missing_env_and_writes_results(tmp_path, capsys):
    code = main(
        [
            "bench",
            "--frameworks",
            "mxnet",
            "--python",
            "mxnet=/no/such/python",
            "--workloads",
            "tiny",
            "--repeats",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 4
    [saved] = tmp_path.glob("*.json")
    rows = json.loads(saved.read_text())["rows"]
    assert [(r["framework"], r["status"]) for r in rows] == [("numpy", "ok"), ("mxnet", "missing")]
    assert list(tmp_path.glob("*.md")) and list(tmp_path.glob("*-throughput.png"))
    assert "missing" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workloads", "huge"], "unknown workload"),
        (["--devices", "tpu"], "--devices"),
        (["--repeats", "0"], "--repeats"),
    ],
    ids=["workload", "device", "repeats"],
)
def test_bench_refuses_bad_arguments(tmp_path, capsys, args, message):
    assert main(["bench", "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_gpu_script_without_a_gpu_is_a_dry_run_that_names_what_it_would_run(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "bench" / "gpu.py"
    env = os.environ | {"PATH": str(Path(sys.executable).parent), "OUT": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
    )
    assert run.returncode == 0, run.stderr
    assert "GPU: none" in run.stdout and "dry run (no GPU here)" in run.stdout
    assert "bench --devices=cpu,gpu" in run.stdout and "--dtype float64" in run.stdout
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing
