"""Legacy QKeras (Keras 2) import: the quantizer map against QKeras's published formulas, the
reader on hand-written Keras 2 files, and an imported MLP compiled and verified exact.

The reference formulas are Google QKeras's, qkeras/quantizers.py (github.com/google/qkeras,
commit a71ea40217f7ef9e4a484a7d32235b54d437c78a), forward value of
- quantized_bits.__call__ (alpha None or a number):
      unsigned_bits = bits - keep_negative; m = 2**unsigned_bits; m_i = 2**integer
      p = x * m / m_i
      xq = m_i * clip(_round_through(p), keep_negative * (-m + symmetric), m - 1) / m
      xq = scale * xq            (scale = alpha, or 1.0 when alpha is None)
- quantized_relu.__call__ (use_sigmoid=0, negative_slope=0):
      m = 2**bits; m_i = 2**integer; p = x * m / m_i
      xq = m_i * clip(_round_through(p) / m, 0.0, 1.0 - 1.0 / m)
where _round_through rounds with tf.round (half to even), i.e. numpy's np.round.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from trigger_ml.errors import MismatchError, UnsupportedError
from trigger_ml.interop.qkeras_legacy import SUPPORTED_LAYERS, import_legacy, plan, predictions_file
from trigger_ml.interop.qkeras_quantizers import SUPPORTED_QUANTIZERS, map_quantizer, qkeras_quantize

# --------------------------------------------------------------------------- QKeras formulas (numpy)


def qkeras_bits(x, bits, integer, symmetric=0, keep_negative=True, alpha=None):
    k = int(bool(keep_negative))
    m = 2.0 ** (bits - k)
    m_i = 2.0**integer
    p = x * m / m_i
    xq = m_i * np.clip(np.round(p), k * (-m + symmetric), m - 1) / m
    return (1.0 if alpha is None else alpha) * xq


def qkeras_relu(x, bits, integer):
    m = 2.0**bits
    m_i = 2.0**integer
    p = x * m / m_i
    return m_i * np.clip(np.round(p) / m, 0.0, 1.0 - 1.0 / m)


def qkeras_eval(name, args, x):
    return qkeras_bits(x, **args) if name == "quantized_bits" else qkeras_relu(x, **args)


def dense_grid(lo: float, hi: float, step: float) -> np.ndarray:
    """Every quarter step from beyond the low edge to beyond the high edge: grid points, rounding
    ties (half steps) and the values around both saturation edges."""
    n = int(round((hi - lo) / (step / 4)))
    return (lo - 2 * step + np.arange(n + 16 + 1) * (step / 4)).astype(np.float32)


QUANTIZERS = [
    ("quantized_bits", {"bits": 8, "integer": 0}),
    ("quantized_bits", {"bits": 4, "integer": 2}),
    ("quantized_bits", {"bits": 6, "integer": -1}),
    ("quantized_bits", {"bits": 3, "integer": 5}),
    ("quantized_bits", {"bits": 5, "integer": 1, "symmetric": 1}),
    ("quantized_bits", {"bits": 4, "integer": 0, "keep_negative": False}),
    ("quantized_bits", {"bits": 1, "integer": 0, "keep_negative": False}),
    ("quantized_bits", {"bits": 16, "integer": 0, "keep_negative": False}),
    ("quantized_bits", {"bits": 2, "integer": 0}),
    ("quantized_bits", {"bits": 7, "integer": 3, "alpha": 1.0}),
    ("quantized_relu", {"bits": 4, "integer": 1}),
    ("quantized_relu", {"bits": 6, "integer": 0}),
    ("quantized_relu", {"bits": 3, "integer": 2}),
    ("quantized_relu", {"bits": 8, "integer": 4}),
    ("quantized_relu", {"bits": 1, "integer": 0}),
]


@pytest.mark.parametrize("name,args", QUANTIZERS, ids=[f"{n}{tuple(a.values())}" for n, a in QUANTIZERS])
def test_mapped_hgq2_quantizer_equals_the_qkeras_formula(name, args):
    from hgq.layers import Quantizer
    from qkeras.quantizers import quantized_bits  # hgq2's; does not rewrite hgq.layers (only qkeras.qlayers does)

    m, why = map_quantizer({"class_name": name, "config": args}, on_weights=False)
    assert m is not None, why
    bits, integer = args["bits"], args["integer"]
    k = name == "quantized_bits" and args.get("keep_negative", True)
    step = 2.0 ** (integer - (bits - k))
    x = dense_grid(-(2.0**integer), 2.0**integer, step)
    want = qkeras_eval(name, args, x.astype(np.float64))
    layer = Quantizer(quantized_bits(**m.hgq2))
    got = np.asarray(layer(x[None]))[0].astype(np.float64)
    np.testing.assert_array_equal(got, want)
    # the grid really probes ties and both saturation edges
    assert np.any(np.isclose(np.mod(x / step, 1.0), 0.5)) and want.max() < x.max() and want.min() > x.min()
    levels = 2**bits - (1 if k and args.get("symmetric") else 0)
    assert len(np.unique(want)) == levels  # every level of the format is hit


def test_string_config_and_sign_bit_counting():
    m, _ = map_quantizer("quantized_bits(8,3,1,alpha=1)", on_weights=False)
    assert m.hgq2 == {"bits": 7, "integer": 3, "symmetric": True, "keep_negative": True}  # sign counted apart
    m, _ = map_quantizer("quantized_relu(4,1)", on_weights=False)
    assert m.hgq2 == {"bits": 4, "integer": 1, "symmetric": False, "keep_negative": False}


@pytest.mark.parametrize("alpha", [0.5, 2.0, 0.25])
def test_power_of_two_alpha_on_weights_is_baked_exactly(alpha):
    from hgq.layers import Quantizer
    from qkeras.quantizers import quantized_bits

    m, why = map_quantizer(
        {"class_name": "quantized_bits", "config": {"bits": 5, "integer": 1, "alpha": alpha}}, on_weights=True
    )
    assert m is not None, why
    w = dense_grid(-2.0, 2.0, 2.0**-3).astype(np.float64)
    baked = qkeras_quantize(w, m)
    np.testing.assert_array_equal(baked, qkeras_bits(w, 5, 1, alpha=alpha))
    # the hgq2 quantizer put on the layer leaves the baked weights unchanged
    again = np.asarray(Quantizer(quantized_bits(**m.hgq2))(baked.astype(np.float32)[None]))[0]
    np.testing.assert_array_equal(again.astype(np.float64), baked)
    assert (
        map_quantizer(
            {"class_name": "quantized_bits", "config": {"bits": 5, "integer": 1, "alpha": alpha}}, on_weights=False
        )[0]
        is None
    )  # alpha * Q(x) on activations: no hgq2 equivalent


# --------------------------------------------------------------------------- Keras 2 files by hand


def _q(name, **config):
    return {"class_name": name, "config": config}


def _layer(cls, name, inbound, **config):
    return {
        "class_name": cls,
        "name": name,
        "config": {"name": name, "trainable": True, "dtype": "float32", **config},
        "inbound_nodes": [[[inbound, 0, 0, {}]]] if inbound else [],
    }


def _qdense(name, inbound, units, kq, bq, activation="linear"):
    return _layer(
        "QDense",
        name,
        inbound,
        units=units,
        activation=activation,
        use_bias=True,
        kernel_initializer={"class_name": "QInitializer", "config": {}},
        bias_initializer={"class_name": "Zeros", "config": {}},
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        kernel_quantizer=kq,
        bias_quantizer=bq,
        kernel_range=None,
        bias_range=None,
    )


KQ1 = _q(
    "quantized_bits",
    bits=6,
    integer=0,
    symmetric=0,
    alpha=1,
    keep_negative=True,
    use_stochastic_rounding=False,
    qnoise_factor=1.0,
)
BQ1 = _q(
    "quantized_bits",
    bits=8,
    integer=2,
    symmetric=0,
    alpha=None,
    keep_negative=True,
    use_stochastic_rounding=False,
    qnoise_factor=1.0,
)
KQ3 = _q(
    "quantized_bits",
    bits=4,
    integer=0,
    symmetric=1,
    alpha=0.5,
    keep_negative=True,
    use_stochastic_rounding=False,
    qnoise_factor=1.0,
)


def mlp_config() -> dict:
    """A Keras 2.x `model.to_json()` of a QKeras MLP (10 inputs on a 16-bit unsigned grid)."""
    layers = [
        {
            "class_name": "InputLayer",
            "name": "inp",
            "inbound_nodes": [],
            "config": {
                "batch_input_shape": [None, 10],
                "dtype": "float32",
                "sparse": False,
                "ragged": False,
                "name": "inp",
            },
        },
        _layer("QActivation", "q_in", "inp", activation="quantized_bits(16,0,0,keep_negative=False)"),
        _qdense("dense1", "q_in", 16, KQ1, BQ1),
        _layer(
            "QActivation",
            "relu1",
            "dense1",
            activation=_q(
                "quantized_relu",
                bits=4,
                integer=1,
                use_sigmoid=0,
                negative_slope=0.0,
                use_stochastic_rounding=False,
                relu_upper_bound=None,
                qnoise_factor=1.0,
            ),
        ),
        _qdense("dense2", "relu1", 8, KQ1, BQ1, activation="quantized_relu(5,2)"),
        _qdense("logit", "dense2", 1, KQ3, BQ1),
    ]
    return {
        "class_name": "Functional",
        "keras_version": "2.13.1",
        "backend": "tensorflow",
        "config": {
            "name": "qkeras_mlp",
            "layers": layers,
            "input_layers": [["inp", 0, 0]],
            "output_layers": [["logit", 0, 0]],
        },
    }


def mlp_weights(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    shapes = {"dense1": (10, 16), "dense2": (16, 8), "logit": (8, 1)}
    return {
        n: {"kernel": rng.normal(0, 0.6, s).astype(np.float32), "bias": rng.normal(0, 0.5, s[1]).astype(np.float32)}
        for n, s in shapes.items()
    }


def write_weights(group, weights) -> None:
    """Keras 2's weight layout: `layer_names`, one group per layer with `weight_names`."""
    names = ["inp", "q_in", "dense1", "relu1", "dense2", "logit"]
    group.attrs["layer_names"] = [n.encode() for n in names]
    group.attrs["backend"], group.attrs["keras_version"] = b"tensorflow", b"2.13.1"
    for n in names:
        g = group.create_group(n)
        ws = weights.get(n, {})
        g.attrs["weight_names"] = [f"{n}/{w}:0".encode() for w in ws]
        for w, arr in ws.items():
            g.create_dataset(f"{n}/{w}:0", data=arr)


def reference_predict(x: np.ndarray, weights) -> np.ndarray:
    """The legacy model by QKeras's formulas alone (float64)."""

    def dense(h, n, kq, bq):
        k = qkeras_bits(weights[n]["kernel"].astype(np.float64), **_args(kq))
        b = qkeras_bits(weights[n]["bias"].astype(np.float64), **_args(bq))
        return h @ k + b

    h = qkeras_bits(x, 16, 0, keep_negative=False)
    h = qkeras_relu(dense(h, "dense1", KQ1, BQ1), 4, 1)
    h = qkeras_relu(dense(h, "dense2", KQ1, BQ1), 5, 2)
    return dense(h, "logit", KQ3, BQ1)


def _args(q):
    c = q["config"]
    return {
        "bits": c["bits"],
        "integer": c["integer"],
        "symmetric": c["symmetric"],
        "keep_negative": c["keep_negative"],
        "alpha": c["alpha"],
    }


def grid_inputs(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**16, (n, 10)) * 2.0**-16


def write_json_h5(d, weights, predictions: bool = True):
    src, wfile = d / "model.json", d / "weights.h5"
    src.write_text(json.dumps(mlp_config()))
    with h5py.File(wfile, "w") as f:
        write_weights(f, weights)
    if predictions:
        x = grid_inputs(2000)
        np.savez(predictions_file(src), x=x, y=reference_predict(x, weights))
    return src, wfile


# --------------------------------------------------------------------------- reader errors (no rebuild)


def test_unsupported_layers_and_quantizers_are_listed_in_one_error(tmp_path):
    cfg = mlp_config()
    layers = cfg["config"]["layers"]
    layers[2]["config"]["kernel_quantizer"] = _q("quantized_bits", bits=4, integer=0, symmetric=1, alpha="auto_po2")
    layers[3]["config"]["activation"] = _q("quantized_relu", bits=4, integer=1, negative_slope=0.25)
    layers[4]["config"]["bias_quantizer"] = None
    layers.insert(5, _layer("QBatchNormalization", "bn", "dense2"))
    layers[6]["inbound_nodes"] = [[["bn", 0, 0, {}]]]
    src = tmp_path / "model.json"
    src.write_text(json.dumps(cfg))
    with h5py.File(tmp_path / "w.h5", "w") as f:
        write_weights(f, mlp_weights())
    out = tmp_path / "out" / "model.keras"
    with pytest.raises(UnsupportedError) as e:
        import_legacy(src, tmp_path / "w.h5", out)
    msg = str(e.value)
    for needle in ("auto_po2", "negative_slope", "no bias_quantizer", "QBatchNormalization", "4 unsupported"):
        assert needle in msg, msg
    assert all(k in msg for k in list(SUPPORTED_LAYERS) + list(SUPPORTED_QUANTIZERS))
    assert not out.exists() and not out.parent.exists()


def test_model_without_input_quantizer_is_refused(tmp_path):
    cfg = mlp_config()
    del cfg["config"]["layers"][1]
    cfg["config"]["layers"][1]["inbound_nodes"] = [[["inp", 0, 0, {}]]]
    src = tmp_path / "model.json"
    src.write_text(json.dumps(cfg))
    with h5py.File(tmp_path / "w.h5", "w") as f:
        write_weights(f, mlp_weights())
    with pytest.raises(UnsupportedError, match="input grid"):
        import_legacy(src, tmp_path / "w.h5", tmp_path / "model.keras")
    # with an input quantizer given, the plan puts it in front and has nothing left to refuse
    p = plan(cfg, {n: w for n, w in mlp_weights().items()}, input_quantizer="quantized_bits(16,6)")
    assert not p.errors and p.specs[1] == {
        "kind": "quantizer",
        "name": "input_quantizer",
        "q": {"bits": 15, "integer": 6, "symmetric": False, "keep_negative": True},
    }
    assert p.quantizers[0]["layer"] == "input_quantizer"


# --------------------------------------------------------------------------- rebuild (child process)


@pytest.fixture(scope="session")
def imported(tmp_path_factory):
    d = tmp_path_factory.mktemp("qkeras")
    weights = mlp_weights()
    src, wfile = write_json_h5(d, weights)
    info = import_legacy(src, wfile, d / "run" / "model.keras")
    return d, weights, info


@pytest.mark.slow
def test_import_rebuilds_the_model_and_reproduces_shipped_predictions(imported):
    import sys

    d, weights, info = imported
    assert info["predictions"] == {
        "file": str(d / "model.predictions.npz"),
        "events": 2000,
        "mismatched": 0,
        "exact": True,
    }
    assert info["input_shape"] == [10] and info["format"] == "json+h5"
    assert info["input_format"] == {"signed": False, "integer": 0, "frac": 16, "round": "RND_CONV", "overflow": "SAT"}
    assert [q["original"] for q in info["quantizers"] if q["layer"] == "logit"][0].startswith("quantized_bits(4, 0")
    assert any("baked as 0.5" in q["hgq2"] for q in info["quantizers"])
    assert [layer["name"] for layer in info["layers"]] == [
        "q_in",
        "dense1",
        "relu1",
        "dense2",
        "dense2_activation",
        "logit",
    ]
    assert "qkeras.qlayers" not in sys.modules  # the rebuild ran in its own process
    # the saved model predicts what the QKeras formulas give, also off the shipped inputs
    from trigger_ml.train.fit import load_model
    from trigger_ml.verify.levels import QuantizedModel

    x = grid_inputs(3000, seed=7)
    y = QuantizedModel(load_model(d / "run" / "model.keras")).predict(x)
    np.testing.assert_array_equal(y, reference_predict(x, weights))
    assert len(np.unique(y)) > 100


@pytest.mark.slow
def test_full_h5_and_a_wrong_prediction_is_a_mismatch(tmp_path):
    weights = mlp_weights(seed=3)
    src = tmp_path / "model.h5"
    with h5py.File(src, "w") as f:
        f.attrs["model_config"] = json.dumps(mlp_config())
        f.attrs["keras_version"] = "2.13.1"
        write_weights(f.create_group("model_weights"), weights)
    x = grid_inputs(500)
    y = reference_predict(x, weights)
    y[17, 0] += 2.0**-6
    np.savez(predictions_file(src), x=x, y=y)
    out = tmp_path / "run" / "model.keras"
    with pytest.raises(MismatchError, match="1/500 events; first event 17"):
        import_legacy(src, None, out)
    assert not out.exists()


def write_card(run, reference: str, name: str) -> None:
    """A minimal run directory for compile: the imported model.keras and a generated card (the
    reference model's card renamed: its input kind gives the verify data and the fuzz grid)."""
    import yaml

    from tests.conftest import ROOT
    from trigger_ml.config import load_card

    card = load_card(ROOT / "models" / f"{reference}.yaml").to_dict()
    card.update(name=name, description=f"legacy QKeras model imported by test_qkeras_legacy ({reference} input)")
    (run / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))


@pytest.mark.slow
def test_imported_mlp_goes_through_import_compile_and_verify_on_the_command_line(imported, tmp_path):
    """The user's path: `trigger-ml import model.json --weights ...`, `compile`, `verify` (exit 0)."""
    from trigger_ml.cli import main
    from trigger_ml.compile import manifest

    d, _, _ = imported

    def cli(*args: str) -> int:
        try:
            main(list(args))
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    run, fw = tmp_path / "run", tmp_path / "fw"
    assert cli("import", str(d / "model.json"), "--weights", str(d / "weights.h5"), "--out", str(run)) == 0
    assert cli("compile", str(run), "--out", str(fw)) == 0
    m = manifest.read(fw)
    assert m["rtl"]["written"] is True  # QKeras's round half to even as exact tie detection in da4ml's graph
    assert m["interface"]["inputs"][0]["precision"].startswith("ufixed<16,0")
    assert cli("verify", str(fw), "--fuzz", "2000", "--junit", str(tmp_path / "v.xml")) == 0
    xml = (tmp_path / "v.xml").read_text()
    assert 'failures="0"' in xml and "keras == csim" in xml and "keras == rtl" in xml


def conv_config() -> dict:
    """A Keras 2.x Sequential: QActivation input grid, QConv2D with a quantized relu, Flatten, QDense."""
    conv = _layer(
        "QConv2D",
        "conv",
        None,
        filters=2,
        kernel_size=[3, 3],
        strides=[1, 1],
        padding="valid",
        data_format="channels_last",
        dilation_rate=[1, 1],
        groups=1,
        activation="quantized_relu(4,2)",
        use_bias=True,
        kernel_quantizer=KQ1,
        bias_quantizer=BQ1,
    )
    layers = [
        {
            "class_name": "InputLayer",
            "config": {"batch_input_shape": [None, 9, 9, 1], "dtype": "float32", "name": "image"},
        },
        _layer("QActivation", "q_in", None, activation="quantized_bits(10,4,0,keep_negative=False)"),
        conv,
        _layer("Flatten", "flat", None, data_format="channels_last"),
        _qdense("out", None, 1, KQ3, BQ1),
    ]
    for layer in layers:
        layer.pop("inbound_nodes", None)
        layer.pop("name", None)
    return {"class_name": "Sequential", "keras_version": "2.11.0", "config": {"name": "seq", "layers": layers}}


def conv_reference(x: np.ndarray, w) -> np.ndarray:
    h = qkeras_bits(x, 10, 4, keep_negative=False)
    k = qkeras_bits(w["conv"]["kernel"].astype(np.float64), **_args(KQ1))
    b = qkeras_bits(w["conv"]["bias"].astype(np.float64), **_args(BQ1))
    win = np.lib.stride_tricks.sliding_window_view(h, (3, 3), axis=(1, 2))  # (n, 7, 7, 1, 3, 3)
    c = qkeras_relu(np.einsum("nijcuv,uvcf->nijf", win, k) + b, 4, 2)
    kd = qkeras_bits(w["out"]["kernel"].astype(np.float64), **_args(KQ3))
    return c.reshape(len(x), -1) @ kd + qkeras_bits(w["out"]["bias"].astype(np.float64), **_args(BQ1))


@pytest.mark.slow
def test_sequential_qconv2d_model_is_rebuilt_compiled_and_verified_exact(small_data, tmp_path):
    """A Sequential QConv2D model on the 9x9 image grid (ufixed<10,4>, eg_cnn's input)."""
    from trigger_ml.compile import Options, compile_run
    from trigger_ml.verify.run import verify_firmware

    rng = np.random.default_rng(5)
    w = {
        "conv": {
            "kernel": rng.normal(0, 0.6, (3, 3, 1, 2)).astype(np.float32),
            "bias": rng.normal(0, 0.5, 2).astype(np.float32),
        },
        "out": {"kernel": rng.normal(0, 0.3, (98, 1)).astype(np.float32), "bias": np.array([0.3], np.float32)},
    }
    src = tmp_path / "model.json"
    src.write_text(json.dumps(conv_config()))
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.attrs["layer_names"] = [b"q_in", b"conv", b"flat", b"out"]
        for n in ("q_in", "conv", "flat", "out"):
            g = f.create_group(n)
            g.attrs["weight_names"] = [f"{n}/{k}:0".encode() for k in w.get(n, {})]
            for k, arr in w.get(n, {}).items():
                g.create_dataset(f"{n}/{k}:0", data=arr)
    x = rng.integers(0, 2**10, (400, 9, 9, 1)) * 2.0**-6
    y = conv_reference(x, w)
    assert len(np.unique(y)) > 100
    np.savez(predictions_file(src), x=x, y=y)
    run = tmp_path / "run"
    info = import_legacy(src, tmp_path / "w.h5", run / "model.keras")
    assert info["predictions"]["exact"] and info["input_shape"] == [9, 9, 1] and info["format"] == "json+h5"
    assert [layer["name"] for layer in info["layers"]] == ["q_in", "conv", "conv_activation", "flat", "out"]
    write_card(run, "eg_cnn", "qkeras_cnn")
    res = compile_run(run, tmp_path / "fw", Options(strategy="latency"))
    assert res.manifest["interface"]["inputs"][0]["precision"].startswith("ufixed<10,4")
    out = verify_firmware(res.out, small_data, n_fuzz=500, rtl=False, check_fidelity=False)
    assert out.exit_code == 0 and all(r.ok for r in out.exact), [r.first for r in out.exact]
    assert {r.level for r in out.exact} == {"csim", "cmssw", "da4ml"}  # da4ml: round half to even, exact
