"""The PyTorch loop a user writes first: a DataLoader over a TensorDataset, shuffled."""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader, TensorDataset


def idiomatic_fit(X, y, batch_size: int, epochs: int) -> list[float]:
    X, y = torch.from_numpy(X), torch.from_numpy(y).unsqueeze(1)
    loader = DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=True)
    model = torch.nn.Linear(X.shape[1], 1, dtype=X.dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.MSELoss()
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return seconds
