"""`trigger-ml export --onnx` round trip on a tiny eg_mlp: float ONNX within 1e-6 of the float twin
(onnxruntime), QONNX exactly equal to the quantized model (qonnx's executor)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trigger_ml.errors import UnsupportedError

onnx = pytest.importorskip("onnx")
pytest.importorskip("qonnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="session")
def exported(trained, tmp_path_factory):
    from trigger_ml.interop.onnx_export import export_run

    _, run, _ = trained("eg_mlp")
    out = tmp_path_factory.mktemp("export") / "onnx"
    return run, out, export_run(run, out)


@pytest.mark.slow
def test_eg_mlp_export_round_trip(exported):
    run, out, summary = exported
    assert summary["float"]["ok"] and summary["float"]["max_error"] <= 1e-6
    assert summary["qonnx"]["ok"] and summary["qonnx"]["mismatched"] == 0 and summary["qonnx"]["compared"] > 1000
    assert json.loads((out / "export.json").read_text()) == summary
    q = onnx.load(out / "model.qonnx.onnx")
    assert sum(n.op_type == "Quant" for n in q.graph.node) >= 6  # per layer: input, weights, biases
    onnx.checker.check_model(onnx.load(out / "float.onnx"))


@pytest.mark.slow
def test_exported_files_agree_with_keras_on_data(exported, trained, small_data):
    """Independent of the export's own check: real windows through both files."""
    from trigger_ml.interop.reference import OrtSession, QonnxExecutor
    from trigger_ml.train.fit import load_model
    from trigger_ml.train.models import model_inputs
    from trigger_ml.verify.levels import QuantizedModel

    run, out, _ = exported
    card, _, _ = trained("eg_mlp")
    x = model_inputs(card, small_data)[:500].astype(np.float64)
    np.testing.assert_array_equal(
        QonnxExecutor(onnx.load(out / "model.qonnx.onnx")).predict(x),
        QuantizedModel.load(run / "model.keras").predict(x),
    )
    y_f = np.asarray(load_model(run / "float.keras").predict(x.astype(np.float32), verbose=0), np.float64)
    np.testing.assert_allclose(OrtSession(onnx.load(out / "float.onnx")).predict(x), y_f, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_cli_export_writes_both_files(trained, tmp_path):
    from trigger_ml.cli import main

    _, run, _ = trained("eg_mlp")
    main(["export", str(run), "--onnx", "--out", str(tmp_path / "x")])
    assert {p.name for p in (tmp_path / "x").iterdir()} == {"float.onnx", "model.qonnx.onnx", "export.json"}


def test_cnn_is_refused_with_one_clear_error():
    import keras

    from trigger_ml.interop.onnx_export import float_onnx

    m = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    with pytest.raises(UnsupportedError, match="Conv2D"):
        float_onnx(m)
