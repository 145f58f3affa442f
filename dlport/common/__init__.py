"""Everything framework-free: config, data, batching, init, metrics, results, checkpoints,
the exact solver's contract and the shared fit driver."""
