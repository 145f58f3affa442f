"""A stand-in for a framework env's interpreter: ``fake_env.py MODE -m dlport train ...``.

good: the real NumPy reference, labelled as the framework asked for; off: the same, nudged
by 1e-6; crash / garbage / slow: the failures compare must survive.
"""

import sys
import time

mode, argv = sys.argv[1], sys.argv[5:]  # drop "-m dlport train"
if mode == "crash":
    raise RuntimeError("simulated crash inside the framework")
if mode == "slow":
    time.sleep(60)

from dlport.cli import build_parser, config_from_args  # noqa: E402
from dlport.common.data import load_dataset  # noqa: E402
from dlport.frameworks.numpy.trainer import NumpyTrainer  # noqa: E402

args = build_parser().parse_args(["train", *argv])
if mode == "garbage":
    with open(args.json, "w") as fh:
        fh.write("this is not JSON")
    sys.exit(0)
result = NumpyTrainer().fit(load_dataset(args.data), config_from_args(args))
result.framework = args.framework
if mode == "off":
    result.weights = [w + 1e-6 for w in result.weights]
with open(args.json, "w") as fh:
    fh.write(result.to_json())
