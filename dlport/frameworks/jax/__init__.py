"""JAX: a params pytree, optax, one jitted lax.scan per epoch.

Importing this package (the jax trainer, or keras-jax's use of ``epoch``) turns on JAX's
float64, ``jax_enable_x64``: process-wide, and it must precede the first array, which a
package ``__init__`` guarantees whatever order a module's imports are sorted in. Only the JAX
ports import it, each in its own process; ``import dlport`` does not.
"""

import jax

jax.config.update("jax_enable_x64", True)
# Full float32 matmuls (predict, lstsq) where XLA's default would use TF32 on NVIDIA GPUs;
# a --tf32 speed run widens it for its epochs only (epoch.ScanEpochs).
jax.config.update("jax_default_matmul_precision", "float32")
