"""Keras 3 on its JAX backend: a stateless train step, jitted with the epoch in one lax.scan."""
