"""What the CUDA graph buys: dlport's torch epoch eager against replayed, same data, same GPU.

    PYTHONPATH=. python3 bench/torch_graphs.py      (bench/gpu.py runs it)

Prints samples/s for TorchRunner (eager steps) and CudaGraphRunner on the medium and large
workloads' shapes, float32, TF32 allowed (the benchmark's GPU setting), 3 epochs after one.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from dlport.common.batching import epoch_order
from dlport.common.config import TrainConfig
from dlport.common.init import initial_params
from dlport.frameworks.torch.trainer import CudaGraphRunner, TorchRunner, set_precision


def samples_per_second(runner_class, X, y, batch: int, epochs: int = 3) -> float:
    n, d = X.shape
    w0, b0 = initial_params(d, 0)
    config = TrainConfig(lr=0.01, batch_size=batch, dtype="float32", device="gpu", tf32=True)
    runner = runner_class(X, y, w0.astype(np.float32), b0, config, torch.device("cuda"))
    runner.run_epoch(epoch_order(n, 0, 0, batch))  # capture, allocation
    start = time.perf_counter()
    for epoch in range(1, 1 + epochs):
        runner.run_epoch(epoch_order(n, 0, epoch, batch))
    return n * epochs / (time.perf_counter() - start)


def main() -> None:
    set_precision(cuda=True, tf32=True)
    rng = np.random.default_rng(0)
    for name, n, d, batch in (("medium", 100_000, 16, 256), ("large", 2_000_000, 64, 8192)):
        X = rng.standard_normal((n, d), dtype=np.float32)
        y = (X @ rng.standard_normal(d)).astype(np.float32)
        eager = samples_per_second(TorchRunner, X, y, batch)
        graph = samples_per_second(CudaGraphRunner, X, y, batch)
        print(
            f"{name}: eager {eager:,.0f} samples/s, CUDA graph {graph:,.0f} ({graph / eager:.1f}x)"
        )


if __name__ == "__main__":
    main()
