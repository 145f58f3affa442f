"""ONNX files of the linear model: the reference graph, the metadata every export carries, and
running a file in onnxruntime.

Each framework exports with its own exporter where one works (``TrainerBase.onnx_model``);
this module holds what is the same for all of them. ``onnx`` and ``onnxruntime`` are the
``dlport[onnx]`` extra, imported only here and only when asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from dlport.common.errors import DlportError

OPSET = 17  # Gemm and every type this graph uses; onnxruntime >= 1.14 runs it
INSTALL_HINT = "pip install 'dlport[onnx]' (onnx, onnxruntime and the exporters)"


def import_onnx():
    try:
        import onnx
    except ImportError:
        raise DlportError(f"ONNX export needs the onnx package: {INSTALL_HINT}") from None
    return onnx


@dataclass(frozen=True)
class Exported:
    """An exported graph and how it was made: the exporter's name, and why not the framework's
    own exporter where it could not be used."""

    model: object  # onnx.ModelProto
    exporter: str


def reference_graph(weights: np.ndarray, bias: float, dtype: str):
    """y = X W + b as one ONNX Gemm, built with ``onnx.helper`` from the weights."""
    onnx = import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    element = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}[dtype]
    d = len(weights)
    W = numpy_helper.from_array(np.asarray(weights, dtype=dtype).reshape(d, 1), "W")
    b = numpy_helper.from_array(np.asarray([bias], dtype=dtype), "b")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["X", "W", "b"], ["y"])],
        "dlport_linear",
        [helper.make_tensor_value_info("X", element, ["rows", d])],
        [helper.make_tensor_value_info("y", element, ["rows", 1])],
        [W, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


def finish(exported: Exported, feature_names: list[str], framework: str, dtype: str) -> bytes:
    """The file's bytes: the feature order and provenance in the model's metadata, and the
    weights as constants (MXNet's exporter also lists them as graph inputs, which keeps
    onnxruntime from folding them and lets a caller override them by accident)."""
    onnx = import_onnx()
    model = exported.model
    constants = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in constants]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    metadata = {
        "dlport.feature_names": json.dumps(list(feature_names)),
        "dlport.framework": framework,
        "dlport.dtype": dtype,
        "dlport.exporter": exported.exporter,
    }
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def feature_names(path: str) -> list[str]:
    """The feature order an export recorded."""
    onnx = import_onnx()
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    return json.loads(props["dlport.feature_names"])


def run(path: str, X: np.ndarray) -> np.ndarray:
    """Predictions of an ONNX file, by onnxruntime on the CPU, as a flat array in its dtype."""
    try:
        import onnxruntime
    except ImportError:
        raise DlportError(f"running an ONNX file needs onnxruntime: {INSTALL_HINT}") from None
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (inputs,) = session.get_inputs()
    dtype = np.float64 if inputs.type == "tensor(double)" else np.float32
    (out,) = session.run(None, {inputs.name: np.ascontiguousarray(X, dtype=dtype)})
    return out.reshape(-1)
