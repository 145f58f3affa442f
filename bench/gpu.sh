#!/usr/bin/env bash
# The GPU set in one call, for a lent GPU machine (its python3 holds a CUDA build of torch,
# numpy, matplotlib and rich; nothing can be fetched there):
#
#     run(command="bash bench/gpu.sh", timeout_s=540)
#
# torch only: TensorFlow's CUDA wheels are far over what a call can carry, and MXNet's CUDA
# builds stop at sm_86 (they do not run on Hopper). Results land in $OUT (or bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1 DLPORT_FRAMEWORK=torch
out="${OUT:-bench/results}"
mkdir -p "$out"
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))"
# Parity on the GPU (TF32 off), float64 and float32, against the NumPy reference.
for dtype in float64 float32; do
    python3 -m dlport compare --frameworks torch --python "torch=$(command -v python3)" \
        --device gpu --dtype "$dtype" --out "$out/compare-gpu-$dtype" | tee "$out/compare-gpu-$dtype.txt"
done
# Throughput and time to quality, CPU against GPU, on the workloads where a GPU can matter.
python3 -m dlport bench --frameworks torch --python "torch=$(command -v python3)" \
    --devices cpu,gpu --workloads medium,large,full --repeats 5 --out "$out"
