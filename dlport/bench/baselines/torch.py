"""The PyTorch loop a user writes first: a DataLoader over a TensorDataset, shuffled, each batch
moved to the model's device."""

from __future__ import annotations

import time


def torch_device(device: str) -> str:
    """dlport's device name as torch's: the baseline runs where the row's trainer runs."""
    return {"cpu": "cpu", "gpu": "cuda"}[device]


def idiomatic_fit(X, y, batch_size: int, epochs: int, device: str = "cpu") -> list[float]:
    # Imported here, so that the device mapping above is testable where torch is not installed.
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    where = torch.device(torch_device(device))
    X, y = torch.from_numpy(X), torch.from_numpy(y).unsqueeze(1)
    loader = DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=True)
    model = torch.nn.Linear(X.shape[1], 1, dtype=X.dtype, device=where)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.MSELoss()
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        for xb, yb in loader:
            xb, yb = xb.to(where), yb.to(where)
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()
            optimizer.step()
        if where.type == "cuda":
            torch.cuda.synchronize()  # CUDA is asynchronous: time the work, not its queueing
        seconds.append(time.perf_counter() - start)
    return seconds
