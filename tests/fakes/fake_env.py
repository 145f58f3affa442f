"""A stand-in for a framework env's interpreter, started as compare and bench start one:
``fake_env.py MODE <interpreter flags> -c BOOTSTRAP ROOT MODULE ARGS...``.

It re-executes the real interpreter with those flags and that bootstrap, with this folder as
ROOT and itself as MODULE (and ``--child MODE ROOT MODULE`` ahead of ARGS), so the child sees
the sys.path, environment and working directory a real env's child would; as the child it
imports numpy (a stray numpy.py would break it there) and plays MODE:

good: the real NumPy reference (`dlport train`) or plausible figures (`dlport.bench.worker`),
labelled as asked; off: the reference nudged by 1e-6; crash / garbage / slow: the failures
compare must survive; list, strings, shape, missing, nan, config, framework: valid JSON that is
not the result asked for; orphan: leaves a grandchild (its pid in JSON.pid) and hangs; train:
the real `dlport train` (numpy, a million epochs), announcing itself in JSON.started.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def relaunch(mode: str, argv: list[str]) -> None:
    i = argv.index("-c")
    flags, code, root, module, args = argv[:i], argv[i + 1], argv[i + 2], argv[i + 3], argv[i + 4 :]
    child = [sys.executable, *flags, "-c", code, HERE, "fake_env", "--child", mode, root, module]
    os.execv(sys.executable, child + args)


def option(args: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in args if a.startswith(f"--{name}="))


def corrupt(mode: str, result: dict):
    """Valid JSON that is not the result asked for."""
    if mode == "list":
        return [result]
    if mode == "strings":
        result["weights"] = [str(w) for w in result["weights"]]
    elif mode == "shape":
        result["weights"] = result["weights"][:-1]
    elif mode == "missing":
        del result["metrics"]["mse"]
    elif mode == "nan":
        result["history"]["loss"][-1] = float("nan")  # json.dumps writes NaN
    elif mode == "config":
        result["config"]["lr"] *= 2
    elif mode == "framework":
        result["framework"] = "mxnet" if result["framework"] != "mxnet" else "torch"
    return result


def figures(args: list[str]) -> dict:
    """What `dlport.bench.worker` writes, plausibly, for what it was asked."""
    n = int(option(args, "repeats"))
    series = [1000.0] * n
    return {
        **{k: option(args, k) for k in ("framework", "workload", "device", "dtype")},
        "repeats": n,
        "tf32": "--tf32" in args,
        "framework_version": "0",
        "status": "ok",
        "trainer": {
            "warmup_seconds": [0.1] * n,
            "steps_per_second": series,
            "samples_per_second": series,
            "ttq_seconds": [0.5] * n,
            "ttq_epochs": [2] * n,
            "ttq_reached": True,
            "optimum_mse_standardized": 0.5,
            "exact_seconds": [0.2] * n,
        },
        "idiomatic": {"steps_per_second": series, "samples_per_second": series},
        "peak_rss_mb": 100.0,
    }


def child(mode: str, root: str, module: str, args: list[str]) -> None:
    import json
    import subprocess
    import time

    import numpy  # noqa: F401 - what a shadowing numpy.py would break

    if root:  # what the bootstrap did for the real module
        sys.path.insert(1, root)
    out = option(args, "json")
    if mode == "crash":
        raise RuntimeError("simulated crash inside the framework")
    if mode == "slow":
        time.sleep(60)
    if mode == "orphan":
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        with open(out + ".pid", "w") as fh:
            fh.write(str(grandchild.pid))
        time.sleep(120)
    if mode == "garbage":
        with open(out, "w") as fh:
            fh.write("this is not JSON")
        return

    from dlport.cli import build_parser, config_from_args, main

    if module == "dlport.bench.worker":
        payload = corrupt(mode, figures(args))
    elif mode == "train":
        with open(out + ".started", "w") as fh:
            fh.write(str(os.getpid()))
        args = [a for a in args if not a.startswith("--framework=")]
        sys.exit(main([*args, "--framework=numpy", "--epochs=1000000"]))
    else:
        from dlport.common.data import load_dataset
        from dlport.frameworks.numpy.trainer import NumpyTrainer

        parsed = build_parser().parse_args(args)
        result = NumpyTrainer().fit(load_dataset(parsed.data), config_from_args(parsed))
        result.framework = parsed.framework
        if mode == "off":
            result.weights = [w + 1e-6 for w in result.weights]
        payload = corrupt(mode, result.to_dict())
    with open(out, "w") as fh:
        json.dump(payload, fh)


if sys.argv[1] == "--child":
    child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
else:
    relaunch(sys.argv[1], sys.argv[2:])
