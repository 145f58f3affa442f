"""dlport: one linear-regression trainer, ported natively to several deep-learning frameworks.

Importing dlport imports no framework; ``get_trainer(name)`` imports the one asked for.
"""

__version__ = "0.1.0"

from dlport.common.config import TrainConfig  # noqa: E402
from dlport.common.data import Dataset, load_dataset  # noqa: E402
from dlport.common.errors import DivergenceError, DlportError  # noqa: E402
from dlport.common.registry import framework_names, get_trainer  # noqa: E402
from dlport.common.results import TrainResult  # noqa: E402

__all__ = [
    "Dataset",
    "DivergenceError",
    "DlportError",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "framework_names",
    "get_trainer",
    "load_dataset",
]
