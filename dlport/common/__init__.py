"""Everything framework-free: config, data, batching, init, metrics, results, the protocol."""
