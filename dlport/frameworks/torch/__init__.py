"""The PyTorch port: nn.Linear + nn.MSELoss + torch.optim, CPU and CUDA."""
