"""The fallback: a run for hls4ml's own converter (stock), compiled from the foreign file and
verified against the source's reference, labelled "hls4ml converter, not proven exact" with the
measured match fraction and the first diverging layer. On the field's KERAS_1layer (Keras 2 json +
h5, shared/peer-models), with its source graph built from the h5 by hand (as a front end would)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trigger_ml.interop.ir import Graph, Input, Node

PEERS = Path(__file__).resolve().parents[2].parent / "shared" / "peer-models"
needs_peers = pytest.mark.skipif(
    not (PEERS / "KERAS_1layer.json").exists(), reason="shared/peer-models not beside the repository"
)


def keras_1layer_graph() -> Graph:
    import h5py

    with h5py.File(PEERS / "KERAS_1layer_weights.h5") as f:
        w = {
            n: {k: np.asarray(f[f"{n}/{n}/{k}:0"], np.float64) for k in ("kernel", "bias")}
            for n in ("fc1_relu", "output_sigmoid")
        }
    return Graph(
        "KERAS_1layer",
        [Input("input_1", (10,))],
        [
            Node("dense", "fc1_relu", ["input_1"], "h", {}, w["fc1_relu"]),
            Node("relu", "fc1_relu_relu", ["h"], "hr"),
            Node("dense", "output_sigmoid", ["hr"], "z", {}, w["output_sigmoid"]),
            Node("sigmoid", "sig", ["z"], "y"),
        ],
        ["y"],
        source="keras_v2 KERAS_1layer.json",
    )


@pytest.fixture(scope="session")
def stock_run(tmp_path_factory):
    from trigger_ml.compile import Options, compile_run
    from trigger_ml.interop.stock import import_stock

    root = tmp_path_factory.mktemp("stock")
    files = [PEERS / "KERAS_1layer.json", PEERS / "KERAS_1layer_weights.h5"]
    summary = import_stock(
        files,
        root / "run",
        converter="keras_v2",
        input_shape=(10,),
        name="KERAS_1layer",
        roles={"architecture": files[0], "weights": files[1]},
        source_graph=keras_1layer_graph(),
        tolerance={"max_rel_error": 0.05, "argmax_agreement": 0.95},
        inputs=np.load(PEERS / "KERAS_1layer.reference.npz")["x"],
    )
    res = compile_run(root / "run", root / "fw", Options())
    return root, summary, res


@needs_peers
def test_the_source_graph_reproduces_the_peer_reference():
    ref = np.load(PEERS / "KERAS_1layer.reference.npz")
    y = keras_1layer_graph().evaluate(ref["x"])[0]
    np.testing.assert_allclose(y, ref["y"], atol=2e-6)  # float32 Keras against float64 numpy


@needs_peers
@pytest.mark.slow
def test_stock_run_compiles_from_the_foreign_file_and_is_labelled(stock_run):
    root, summary, res = stock_run
    assert summary["label"] == "hls4ml converter, not proven exact" and not summary["exact"]
    assert not (root / "run" / "model.keras").exists() and (root / "run" / "stock.json").exists()
    m = res.manifest
    assert m["converter"]["label"] == "hls4ml converter, not proven exact"
    assert not m["rtl"]["written"] and "hgq2" in m["rtl"]["reason"]
    assert any("not proven exact" in n for n in res.notes)


@needs_peers
@pytest.mark.slow
def test_stock_firmware_is_measured_against_the_source(stock_run):
    from trigger_ml.verify.levels import csim
    from trigger_ml.verify.run import verify_firmware

    root, _, res = stock_run
    out = verify_firmware(res.out, None, n_fuzz=500)
    checks = {c.name.split(": ")[-1]: c for c in out.gates}
    assert out.exact == [] and 0 <= checks["match fraction"].value < 1 and checks["match fraction"].ok is None
    assert checks["first diverging layer"].detail in (
        "fc1_relu",
        "output_sigmoid",
        "sig",
        "n/a (no layer-wise reference)",
    )
    assert checks["argmax agreement"].ok and out.exit_code == 0
    ref = np.load(PEERS / "KERAS_1layer.reference.npz")  # check.py's entry point on the peer's own inputs
    y = csim(res.out).predict(ref["x"])
    assert np.abs(y - ref["y"]).max() < 0.05
    info = json.loads((root / "run" / "foreign" / "info.json").read_text())
    assert info["levels"] == [{"name": "source", "kind": "graph", "graph": "source", "check": "fidelity"}]


def _leaky_mlp(op: str = "LeakyRelu", seed: int = 0):
    """Gemm -> `op` -> Gemm: LeakyRelu is outside the exact path's op table, inside hls4ml's."""
    from .front_models import const, model, node

    rng = np.random.default_rng(seed)
    inits = [
        const("w0", rng.normal(0, 0.5, (6, 8))),
        const("b0", rng.normal(0, 0.1, 8)),
        const("w1", rng.normal(0, 0.5, (8, 3))),
        const("b1", rng.normal(0, 0.1, 3)),
    ]
    attrs = {"alpha": 0.25} if op == "LeakyRelu" else {}
    nodes = [
        node("Gemm", ["x", "w0", "b0"], ["h"]),
        node(op, ["h"], ["a"], **attrs),
        node("Gemm", ["a", "w1", "b1"], ["y"]),
    ]
    return model(nodes, inits, (1, 6), (1, 3))


@pytest.mark.slow
def test_an_onnx_file_the_exact_path_refuses_falls_back_to_stock_hls4ml(tmp_path):
    """import -> compile -> verify of a file with an op only hls4ml converts: a stock run, labelled,
    its C simulation measured against onnxruntime on the import's inputs."""
    import onnx

    from trigger_ml.compile import Options, compile_run
    from trigger_ml.interop import import_model
    from trigger_ml.verify.run import verify_firmware

    src = tmp_path / "leaky.onnx"
    onnx.save(_leaky_mlp(), src)
    summary = import_model(src, tmp_path / "run")
    assert summary["kind"] == "stock" and summary["label"] == "hls4ml converter, not proven exact"
    assert "LeakyRelu" in summary["exact_path"] and summary["reference"] == "onnxruntime"
    res = compile_run(tmp_path / "run", tmp_path / "fw", Options())
    assert not res.manifest["rtl"]["written"]
    out = verify_firmware(res.out, None, n_fuzz=200)
    checks = {c.name.split(": ")[-1]: c for c in out.gates}
    assert out.exact == [] and 0 <= checks["match fraction"].value <= 1


def test_a_file_neither_path_takes_is_one_refusal_with_both_reasons(tmp_path):
    import onnx

    from trigger_ml.errors import UnsupportedError
    from trigger_ml.interop import import_model

    src = tmp_path / "sin.onnx"
    onnx.save(_leaky_mlp("Sin"), src)
    with pytest.raises(UnsupportedError, match="(?s)Sin.*stock hls4ml cannot convert it either"):
        import_model(src, tmp_path / "run")
    assert not (tmp_path / "run").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["sin.onnx"]


@pytest.mark.slow
def test_a_keras2_file_the_lowering_refuses_falls_back_with_its_graph_as_reference(tmp_path, monkeypatch):
    """The Keras-family wiring: a file that is read but not expressible exactly (the refusal forced
    here: every Keras 2 model of the supported layers is expressible) becomes a stock run whose
    reference is the graph read from the file; compiled and measured like any stock run."""
    import keras

    from trigger_ml.compile import Options, compile_run
    from trigger_ml.errors import UnsupportedError
    from trigger_ml.interop import import_model, keras_front
    from trigger_ml.verify.run import verify_firmware

    from .kfiles import write_keras2

    inp = keras.Input((5,), name="x")
    y = keras.layers.Dense(3, name="d2")(keras.layers.Dense(6, activation="relu", name="d1")(inp))
    (tmp_path / "k").mkdir()
    arch, weights = write_keras2(keras.Model(inp, y, name="mlp"), tmp_path / "k")

    def refuse(*_a, **_k):
        raise UnsupportedError("a per-element quantizer (give every element one format)")

    monkeypatch.setattr(keras_front, "import_graph", refuse)
    summary = import_model(arch, tmp_path / "run", weights=weights)
    assert summary["kind"] == "stock" and "per-element quantizer" in summary["exact_path"]
    assert summary["reference"] == "source"
    res = compile_run(tmp_path / "run", tmp_path / "fw", Options())
    out = verify_firmware(res.out, None, n_fuzz=200)
    checks = {c.name.split(": ")[-1]: c for c in out.gates}
    assert 0 <= checks["match fraction"].value <= 1 and checks["first diverging layer"].detail
