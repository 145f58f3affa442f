"""ONNX export: each framework's file, run in onnxruntime, predicts what ``dlport predict``
does, in the run's dtype, with the feature order in its metadata."""

from __future__ import annotations

import sys

import numpy as np
import onnx  # every tox env installs dlport[onnx]
import pytest

from dlport.common import onnx_model
from dlport.common.config import TrainConfig
from dlport.common.errors import DlportError

# Whose own exporter works with the versions the tox envs install (README, "export").
OWN_EXPORTER = {
    "torch": "torch.onnx.export",
    "tensorflow": "keras Model.export",
    "keras-torch": "keras Model.export",
    "mxnet": "mx.onnx.export_model",
}
TOLERANCE = {"float32": 1e-6, "float64": 1e-12}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_onnx_file_predicts_what_dlport_predict_does(trainer, diabetes, tmp_path, dtype):
    result = trainer.fit(diabetes, TrainConfig(optimizer="adam", epochs=3, dtype=dtype))
    path = str(tmp_path / "model.onnx")
    names = list(diabetes.feature_names)
    exporter = trainer.export_onnx(result.weights, result.bias, path, dtype, names)

    assert exporter.startswith(OWN_EXPORTER.get(trainer.name, "onnx.helper, as "))
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert props["dlport.framework"] == trainer.name and props["dlport.dtype"] == dtype
    assert props["dlport.exporter"] == exporter
    assert onnx_model.feature_names(path) == names
    expected = trainer.predict(result.weights, result.bias, diabetes.X, dtype=dtype, device="cpu")
    got = onnx_model.run(path, diabetes.X)
    assert got.dtype == np.dtype(dtype)  # a float64 model keeps float64 inputs and outputs
    np.testing.assert_allclose(got, expected, rtol=TOLERANCE[dtype], atol=0)


def test_cli_exports_onnx_in_the_runs_dtype_and_says_by_what(trainer, diabetes, tmp_path):
    from test_cli import dlport

    checkpoint = tmp_path / "c.json"
    trained = dlport("train", "--data", "diabetes", "--dtype", "float32", "--epochs", "2",
                     "--checkpoint", str(checkpoint))  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    out = tmp_path / "m.onnx"
    run = dlport("export", "--checkpoint", str(checkpoint), "--framework", trainer.name,
                 "--out", str(out))  # fmt: skip
    assert run.returncode == 0, run.stderr
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    names = list(diabetes.feature_names)
    assert run.stdout == (
        f"ONNX model (float32) written to {out} by {props['dlport.exporter']}; "
        f"its inputs, in order: {names}\n"
    )
    assert onnx.load(out).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_reference_graph_is_x_w_plus_b_with_free_rows(tmp_path):
    w = np.array([0.5, -2.0, 3.25])
    model = onnx_model.reference_graph(w, 0.75, "float64")
    exported = onnx_model.Exported(model, "onnx.helper, as a test")
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx_model.finish(exported, ["a", "b", "c"], "numpy", "float64"))
    for rows in (1, 5):
        X = np.arange(rows * 3.0).reshape(rows, 3) / 7
        np.testing.assert_allclose(onnx_model.run(str(path), X), X @ w + 0.75, rtol=1e-15)


def test_finish_keeps_the_weights_out_of_the_inputs_and_records_the_features():
    """MXNet's exporter lists its weights among the graph inputs too."""
    model = onnx_model.reference_graph(np.ones(2), 0.0, "float32")
    model.graph.input.extend(
        [onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in "Wb"]
    )
    model.metadata_props.add(key="stale", value="x")
    exported = onnx_model.Exported(model, "by hand")
    finished = onnx.load_from_string(onnx_model.finish(exported, ["p", "q"], "mxnet", "float32"))
    assert [i.name for i in finished.graph.input] == ["X"]
    assert {p.key: p.value for p in finished.metadata_props} == {
        "dlport.feature_names": '["p", "q"]',
        "dlport.framework": "mxnet",
        "dlport.dtype": "float32",
        "dlport.exporter": "by hand",
    }


def test_missing_onnx_is_one_line_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(DlportError, match=r"pip install 'dlport\[onnx\]'"):
        onnx_model.reference_graph(np.ones(2), 0.0, "float64")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(DlportError, match=r"needs onnxruntime: pip install 'dlport\[onnx\]'"):
        onnx_model.run("m.onnx", np.ones((1, 2)))
