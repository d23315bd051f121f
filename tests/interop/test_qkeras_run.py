"""The legacy-QKeras importer's wiring into the imported-run format (`qkeras_run`), with the reader
(`qkeras_legacy.import_legacy`, tested on its own) replaced by a stand-in that saves an hgq2 model."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from trigger_ml.errors import UnsupportedError


def _fake_reader(calls: list, fail: bool = False):
    def import_legacy(src, weights, out_model):
        from trigger_ml.fixed import Fixed
        from trigger_ml.interop import ir
        from trigger_ml.interop.lower import lower

        calls.append((src, weights))
        if fail:
            raise UnsupportedError("QConv1D, quantized_po2 not supported")
        w = {"kernel": np.array([[0.5], [-1.0], [0.25]]), "bias": np.array([0.125])}
        g = ir.Graph(
            "x",
            [ir.Input("x", (3,), ir.Quant.of(Fixed(True, 2, 3)))],
            [ir.Node("dense", "d", ["x"], "y", {}, w)],
            ["y"],
        )
        lower(g, "legacy").model.save(out_model)
        return {
            "input_shape": [None, 3],
            "input_format": {"signed": True, "integer": 2, "frac": 3},
            "layers": [{"type": "QDense", "name": "dense", "units": 1}],
            "predictions": {"checked": False},
        }

    return types.SimpleNamespace(import_legacy=import_legacy)


QKERAS_CONFIG = json.dumps({"class_name": "Sequential", "config": {"layers": [{"class_name": "QDense", "config": {}}]}})


def _qkeras_h5(path, full: bool) -> None:
    """Just enough of a Keras 2 file for the file kind (QKeras: a QDense layer)."""
    import h5py

    with h5py.File(path, "w") as f:
        if full:
            f.attrs["model_config"] = QKERAS_CONFIG
            f.create_group("model_weights").attrs["layer_names"] = [b"q"]
        else:
            f.attrs["layer_names"] = [b"q"]


def test_json_and_weights_become_a_run_that_compile_reads(tmp_path, monkeypatch):
    from trigger_ml.compile.driver import read_run
    from trigger_ml.interop import import_model
    from trigger_ml.train.models import input_grid

    calls: list = []
    from trigger_ml.interop import qkeras_run

    monkeypatch.setattr(qkeras_run, "import_legacy", _fake_reader(calls).import_legacy)
    (tmp_path / "m.json").write_text(QKERAS_CONFIG)
    _qkeras_h5(tmp_path / "m.h5", full=False)
    summary = import_model(tmp_path / "m.json", tmp_path / "run", weights=tmp_path / "m.h5")
    assert calls == [(tmp_path / "m.json", tmp_path / "m.h5")] and summary["kind"] == "qkeras"
    card, meta, model_file = read_run(tmp_path / "run")
    assert card.task == "imported" and model_file.exists()
    assert input_grid(card, meta).to_json() == [{"inputs": 3, "format": "fixed<6,3>"}]
    assert sorted(p.name for p in (tmp_path / "run" / "foreign").iterdir()) == ["m.h5", "m.json", "qkeras_import.json"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["import"]["reference"] == "keras"


def test_reader_errors_leave_no_run_dir(tmp_path, monkeypatch):
    from trigger_ml.interop import import_model, qkeras_run

    monkeypatch.setattr(qkeras_run, "import_legacy", _fake_reader([], fail=True).import_legacy)
    _qkeras_h5(tmp_path / "m.h5", full=True)
    with pytest.raises(UnsupportedError, match="QConv1D"):
        import_model(tmp_path / "m.h5", tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_weights_with_an_onnx_file_is_refused(tmp_path):
    pytest.importorskip("onnx")
    import onnx

    from trigger_ml.errors import SchemaError
    from trigger_ml.interop import import_model

    from . import models as M

    onnx.save(M.float_mlp(), tmp_path / "f.onnx")
    (tmp_path / "w.h5").write_bytes(b"")
    with pytest.raises(SchemaError, match="--weights"):
        import_model(tmp_path / "f.onnx", tmp_path / "run", weights=tmp_path / "w.h5")
