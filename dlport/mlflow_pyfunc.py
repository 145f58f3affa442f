"""The MLflow pyfunc of a framework MLflow has no flavour for, as MLflow's "models from code":
MLflow copies this file beside the logged model and runs it to load the model, so it depends on
nothing but its weights file, dlport and the framework."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np


class LinearModel(mlflow.pyfunc.PythonModel):
    """The logged weights, predicted with their framework's own forward pass."""

    def load_context(self, context):
        from dlport.common.registry import get_trainer

        saved = json.loads(Path(context.artifacts["model"]).read_text())
        self.trainer = get_trainer(saved["framework"])
        self.weights, self.bias = np.asarray(saved["weights"]), saved["bias"]
        self.dtype = saved["dtype"]

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        X = np.asarray(model_input, dtype=self.dtype)
        return self.trainer.predict(self.weights, self.bias, X, dtype=self.dtype, device="cpu")


mlflow.models.set_model(LinearModel())
