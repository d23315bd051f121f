"""QKeras files -> import graph (`interop.qkeras_quant`, `interop.qkeras_front`), against numpy formulas of Google QKeras.

Reference formulas: google/qkeras qkeras/quantizers.py (commit a71ea40217f7ef9e4a484a7d32235b54d437c78a),
forward values at inference (x + stop_gradient(-x + xq) = xq, qnoise_factor 1; tf.round = half to even):
- quantized_bits.__call__: unsigned_bits = bits - keep_negative; m = 2**unsigned_bits; m_i = 2**integer;
  xq = m_i * clip(round(x * m / m_i), keep_negative * (-m + symmetric), m - 1) / m  (unsigned_bits > 0)
  else xq = sign(x) with 0 -> +1, (xq + 1) / 2 when not keep_negative; then xq = alpha * xq.
- quantized_relu.__call__ (use_sigmoid 0, negative_slope 0): m = 2**bits;
  xq = m_i * clip(round(x * m / m_i) / m, 0, 1 - 1/m); with relu_upper_bound and not is_quantized_clip:
  xq = where(xq <= relu_upper_bound, xq, relu_upper_bound).
- _clip_power_of_two / quantized_po2 / quantized_relu_po2 (float32): |x| < epsilon (1e-7) -> min_exp;
  max_value caps |x|; exponent = clip(round(log(x) / log(2)), min_exp, max_exp) (quadratic:
  2 * clip(round(log2 sqrt x)), max_exp = 2 * (max_exp // 2)); need_exponent_sign_bit = max_value is None
  or > 1; po2: min/max = -2**(bits-1-need), 2**(bits-1-need) - 1; relu_po2: -2**(bits-need), 2**(bits-need) - 1.
- binary.__call__: sign(x) with 0 -> +1 ({0, 1} with use_01), times alpha; ternary.__call__ (numeric
  alpha): sign(x) * (|x| >= threshold), threshold 0.33 by default, times alpha.
Layers: qkeras/qnormalization.py (73aebd90: tf.nn.batch_normalization with the quantized parameters),
qkeras/qdense_batchnorm.py (2c481af9) and qkeras/qconv2d_batchnorm.py (25e7803b): the folded forms.
"""

from __future__ import annotations

import numpy as np
import pytest

from trigger_ml.errors import UnsupportedError
from trigger_ml.interop.keras_front import read_keras2_json
from trigger_ml.interop.qkeras_quant import parse

from .kfiles import k2_input, k2_layer, k2_model, write_json_h5

F32 = np.float32

# ----------------------------------------------------------------------------- QKeras formulas (numpy)


def qk_bits(x, bits=8, integer=0, symmetric=0, keep_negative=True, alpha=None, **_):
    x = np.asarray(x, np.float64)
    k = int(bool(keep_negative))
    m, m_i = 2.0 ** (bits - k), 2.0**integer
    if bits - k > 0:
        xq = m_i * np.clip(np.round(x * m / m_i), k * (-m + symmetric), m - 1) / m
    else:
        xq = np.sign(x)
        xq += 1.0 - np.abs(xq)
        if not k:
            xq = (xq + 1.0) / 2.0
    return (1.0 if alpha is None else alpha) * xq


def qk_relu(x, bits=8, integer=0, relu_upper_bound=None, is_quantized_clip=True, **_):
    m, m_i = 2.0**bits, 2.0**integer
    xq = m_i * np.clip(np.round(np.asarray(x, np.float64) * m / m_i) / m, 0.0, 1.0 - 1.0 / m)
    if relu_upper_bound and not is_quantized_clip:
        xq = np.where(xq <= relu_upper_bound, xq, relu_upper_bound)
    return xq


def qk_po2(x, bits=8, max_value=None, quadratic_approximation=False, log2_rounding="rnd", relu=False, **_):
    x = np.asarray(x, F32)
    need = 1 if (max_value is None or max_value > 1) else 0
    lo, hi = (
        (-(2 ** (bits - need)), 2 ** (bits - need) - 1)
        if relu
        else (-(2 ** (bits - 1 - need)), 2 ** (bits - 1 - need) - 1)
    )
    if quadratic_approximation:
        hi = 2 * (hi // 2)
    x_abs = np.maximum(x, F32(0)) if relu else np.abs(x)
    eps = F32(1e-7)
    xf = np.where(x_abs < eps, eps, x_abs)
    if max_value is not None:
        xf = np.where(xf >= max_value, F32(max_value), xf)
    xi = np.sqrt(xf) if quadratic_approximation else xf
    l2 = np.log(xi) / F32(np.log(2.0))
    r = np.floor(l2) if log2_rounding == "floor" else np.round(l2)
    e = np.where(x_abs < eps, lo, (2.0 if quadratic_approximation else 1.0) * np.clip(r, lo, hi))
    s = 1.0 if relu else np.sign(x) + (1 - np.abs(np.sign(x)))
    return (s * F32(2.0) ** e.astype(F32)).astype(F32).astype(np.float64)


def qk_binary(x, use_01=False, alpha=None, **_):
    s = np.sign(x) + (1 - np.abs(np.sign(x)))
    return (1.0 if alpha is None else alpha) * ((s + 1) / 2 if use_01 else s)


def qk_ternary(x, alpha=None, threshold=None, **_):
    t = F32(0.33 if threshold is None else threshold)
    x = np.asarray(x, F32)
    return (1.0 if alpha is None else alpha) * (np.abs(x) >= t) * np.sign(x).astype(np.float64)


FORMULAS = {
    "quantized_bits": qk_bits,
    "quantized_relu": qk_relu,
    "quantized_po2": qk_po2,
    "quantized_relu_po2": lambda x, **a: qk_po2(x, relu=True, **a),
    "binary": qk_binary,
    "ternary": qk_ternary,
}


def qk(name, **config):
    return {"module": "qkeras.quantizers", "class_name": name, "config": config, "registered_name": name}


def dense_grid(lo: float, hi: float, step: float) -> np.ndarray:
    """Every quarter step from beyond the low edge to beyond the high edge: grid points, rounding ties
    (half steps) and the values around both saturation edges."""
    n = int(round((hi - lo) / (step / 4)))
    return lo - 2 * step + np.arange(n + 17) * (step / 4)


def activation_graph(tmp_path, quantizer, n: int, before: str | None = None):
    """Input(n) -> [Dense identity, so the quantizer is not the input's] -> QActivation(quantizer)."""
    layers = [k2_input("x", (n,))]
    prev = "x"
    if before:
        layers.append(k2_layer("Activation", "pre", "x", activation=before))
        prev = "pre"
    layers.append(k2_layer("QActivation", "q", prev, activation=quantizer))
    return read_keras2_json(*write_json_h5(tmp_path, k2_model(layers, ["x"], ["q"], "2.21.0"), {}))


# ----------------------------------------------------------------------------- activation quantizers

ACTS = [
    ("quantized_bits", {"bits": 8, "integer": 0}),
    ("quantized_bits", {"bits": 4, "integer": 2}),
    ("quantized_bits", {"bits": 6, "integer": -1}),
    ("quantized_bits", {"bits": 3, "integer": 5}),
    ("quantized_bits", {"bits": 5, "integer": 1, "symmetric": 1}),
    ("quantized_bits", {"bits": 4, "integer": 0, "keep_negative": False}),
    ("quantized_bits", {"bits": 16, "integer": 0, "keep_negative": False}),
    ("quantized_bits", {"bits": 2, "integer": 0}),
    ("quantized_bits", {"bits": 7, "integer": 3, "alpha": 1.0}),
    ("quantized_bits", {"bits": 6, "integer": 1, "alpha": 0.5}),
    ("quantized_bits", {"bits": 5, "integer": 0, "alpha": 4}),
    ("quantized_bits", {"bits": 1, "integer": 0}),  # unsigned_bits 0: the sign
    ("quantized_bits", {"bits": 0, "integer": 0, "keep_negative": False}),  # {0, 1}
    ("quantized_relu", {"bits": 4, "integer": 1}),
    ("quantized_relu", {"bits": 6, "integer": 0}),
    ("quantized_relu", {"bits": 3, "integer": 2}),
    ("quantized_relu", {"bits": 1, "integer": 0}),
    ("quantized_relu", {"bits": 6, "integer": 2, "relu_upper_bound": 1.5, "is_quantized_clip": False}),
    ("quantized_relu", {"bits": 6, "integer": 2, "relu_upper_bound": 1.5}),  # ignored: is_quantized_clip
    ("binary", {}),
    ("binary", {"use_01": True, "alpha": 0.5}),
    ("ternary", {}),
    ("ternary", {"threshold": 0.5, "alpha": 2.0}),
    ("ternary", {"threshold": 0}),
]


def _span(name, a):
    """(lo, hi, step) that covers the quantizer's range with its ties."""
    if name == "quantized_bits" and a["bits"] - a.get("keep_negative", True) > 0:
        k = int(a.get("keep_negative", True))
        return -(2.0 ** a["integer"]), 2.0 ** a["integer"], 2.0 ** (a["integer"] - (a["bits"] - k))
    if name == "quantized_relu":
        return -1.0, 2.0 ** a["integer"], 2.0 ** (a["integer"] - a["bits"])
    return -1.5, 1.5, 2.0**-6


@pytest.mark.parametrize("form", ["dict", "string"])
@pytest.mark.parametrize("name,args", ACTS, ids=[f"{n}{tuple(a.values())}" for n, a in ACTS])
def test_activation_quantizer_equals_the_qkeras_formula(tmp_path, name, args, form):
    conf = qk(name, **args) if form == "dict" else f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})"
    lo, hi, step = _span(name, args)
    x = dense_grid(lo, hi, step)
    graph = activation_graph(tmp_path, conf, len(x), before="linear")
    got = graph.evaluate(x[None])[0][0]
    want = FORMULAS[name](x, **args)
    np.testing.assert_array_equal(got, want)
    if (
        name in ("quantized_bits", "quantized_relu")
        and args["bits"] - args.get("keep_negative", name == "quantized_bits") > 0
    ):
        assert np.any(np.mod(x / step, 1.0) == 0.5)  # ties, decided half to even
        scaled = want / (args.get("alpha") or 1.0)
        assert scaled.max() < x.max() and scaled.min() > x.min()  # both edges saturate


def test_round_half_to_even_and_saturation_edges_exactly(tmp_path):
    x = np.array([0.03125, 0.09375, -0.03125, -0.09375, 0.96875, 0.99, 1.0, 5.0, -1.0, -1.03125, -7.0])
    g = activation_graph(tmp_path, "quantized_bits(5,0,alpha=1)", len(x), before="linear")  # step 1/16, [-1, 15/16]
    want = [0.0, 0.125, 0.0, -0.125, 0.9375, 0.9375, 0.9375, 0.9375, -1.0, -1.0, -1.0]  # 1/32: half a step -> 0 (even)
    np.testing.assert_array_equal(g.evaluate(x[None])[0][0], want)
    g = activation_graph(tmp_path, "quantized_bits(5,0,1,alpha=1)", len(x), before="linear")  # symmetric: floor -15/16
    assert g.evaluate(x[None])[0][0][-1] == -0.9375
    g = activation_graph(tmp_path, "quantized_relu(3,1)", 6, before="linear")  # step 1/4, [0, 7/4]
    np.testing.assert_array_equal(
        g.evaluate(np.array([[0.125, 0.375, -0.5, 1.625, 1.875, 9.0]]))[0][0], [0.0, 0.5, 0.0, 1.5, 1.75, 1.75]
    )


def test_input_quantizer_becomes_the_input_format(tmp_path):
    layers = [k2_input("x", (3,)), k2_layer("QActivation", "in_q", "x", activation="quantized_bits(10,2,alpha=1)")]
    layers.append(
        k2_layer(
            "QDense",
            "d",
            "in_q",
            units=2,
            activation="linear",
            kernel_quantizer=qk("quantized_bits", bits=4, integer=0),
            bias_quantizer=None,
        )
    )
    w = {"d": {"kernel": np.full((3, 2), 0.3, F32), "bias": np.array([0.1, 0.2], F32)}}
    g = read_keras2_json(*write_json_h5(tmp_path, k2_model(layers, ["x"], ["d"]), w))
    assert str(g.inputs[0].q.uniform()) == "fixed<10,3,RND_CONV,SAT>" and [n.op for n in g.nodes] == ["dense"]
    assert any("bias has no quantizer" in n for n in g.notes)
    np.testing.assert_array_equal(g.node("d").weights["bias"], np.array([0.1, 0.2], F32).astype(np.float64))


# ----------------------------------------------------------------------------- weight quantizers

WEIGHT_QS = [
    ("quantized_bits", {"bits": 6, "integer": 0, "alpha": 1}),
    ("quantized_bits", {"bits": 4, "integer": 1, "symmetric": 1, "alpha": 0.5}),
    ("quantized_bits", {"bits": 5, "integer": 0, "alpha": 2}),
    ("quantized_bits", {"bits": 1, "integer": 0}),
    ("quantized_relu", {"bits": 4, "integer": 0}),
    ("quantized_po2", {"bits": 4, "max_value": 1}),
    ("quantized_po2", {"bits": 5}),
    ("quantized_po2", {"bits": 5, "max_value": 1, "quadratic_approximation": True}),
    ("quantized_po2", {"bits": 4, "log2_rounding": "floor"}),
    ("quantized_relu_po2", {"bits": 6, "max_value": 2048}),
    ("quantized_relu_po2", {"bits": 6, "quadratic_approximation": True}),
    ("binary", {"alpha": 0.25}),
    ("ternary", {}),
    ("ternary", {"threshold": 0.1, "alpha": 0.5}),
]


def weight_samples(n_in: int, n_out: int, seed: int) -> np.ndarray:
    """Normal weights plus the edge cases: 0, +-tiny (below 1e-7), exact powers of two, ties of
    2**-5 grids, values far beyond any range."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.7, (n_in, n_out)).astype(F32)
    special = [0.0, -0.0, 3e-8, -3e-8, 1.0, -0.5, 0.25, 2.0**-0.5, 1.5 * 2**-5, -2.5 * 2**-5, 9.0, -9.0, 3000.0]
    w.flat[: len(special)] = special
    return w


@pytest.mark.parametrize("name,args", WEIGHT_QS, ids=[f"{n}{tuple(a.values())}" for n, a in WEIGHT_QS])
def test_qdense_weights_are_quantized_as_qkeras(tmp_path, name, args):
    w, b = weight_samples(5, 4, 1), np.array([0.3, -0.7, 1e-9, 5.0], F32)
    layers = [k2_input("x", (5,)), k2_layer("Activation", "pre", "x", activation="linear")]
    layers.append(
        k2_layer(
            "QDense",
            "d",
            "pre",
            units=4,
            activation="linear",
            use_bias=True,
            kernel_quantizer=qk(name, **args),
            bias_quantizer=qk(name, **args),
        )
    )
    g = read_keras2_json(*write_json_h5(tmp_path, k2_model(layers, ["x"], ["d"]), {"d": {"kernel": w, "bias": b}}))
    qw, qb = FORMULAS[name](w, **args), FORMULAS[name](b, **args)
    np.testing.assert_array_equal(g.node("d").weights["kernel"], qw)
    np.testing.assert_array_equal(g.node("d").weights["bias"], qb)
    x = np.random.default_rng(2).integers(-64, 64, (50, 5)) / 32.0
    np.testing.assert_array_equal(g.evaluate(x)[0], x @ qw + qb)


def test_po2_by_hand():
    """quantized_po2(4, max_value=1): exponents [-8, 0] (need_sign 0, eb 3; capped by max_value);
    |w| < 1e-7 gives 2**-8, never 0. quantized_relu_po2(6, quadratic): even exponents."""
    from trigger_ml.interop.qkeras_quant import quantize_weights

    a = parse("quantized_po2(4, 1)")[1]
    w = np.array([0.3, 0.36, -0.36, 0.0, 1e-8, 5.0, -5.0, 2.0**-9, 2**-7.6], F32)
    got, _ = quantize_weights("quantized_po2", a, w)
    np.testing.assert_array_equal(got, [0.25, 0.5, -0.5, 2.0**-8, 2.0**-8, 1.0, -1.0, 2.0**-8, 2.0**-8])
    a = parse("quantized_relu_po2(6, quadratic_approximation=True)")[1]
    got, _ = quantize_weights("quantized_relu_po2", a, np.array([0.3, 3.0, -1.0, 0.0], F32))
    np.testing.assert_array_equal(got, [0.25, 4.0, 2.0**-32, 2.0**-32])  # min_exp -32 (need_sign 1: 2**(6-1))


# ----------------------------------------------------------------------------- conv layers (Keras as the conv)


def _keras_conv(kind, x, kernel, bias, **kw):
    import keras

    layer = {"QConv1D": keras.layers.Conv1D, "QConv2D": keras.layers.Conv2D}.get(kind)
    if kind == "QDepthwiseConv2D":
        lay = keras.layers.DepthwiseConv2D(kernel.shape[:2], depth_multiplier=kernel.shape[-1], **kw)
    else:
        lay = layer(kernel.shape[-1], kernel.shape[:-2], **kw)
    lay.build(x.shape)
    lay.set_weights([kernel.astype(F32), bias.astype(F32)])
    return np.asarray(lay(x.astype(F32)), np.float64)


@pytest.mark.parametrize(
    "kind,shape,kernel,kw",
    [
        ("QConv1D", (11, 3), (4, 3, 5), {"padding": "same", "strides": 2}),
        ("QConv2D", (7, 6, 2), (3, 2, 2, 4), {"padding": "same", "strides": 2}),
        ("QConv2D", (7, 6, 2), (3, 3, 2, 3), {"padding": "valid"}),
        ("QDepthwiseConv2D", (6, 6, 3), (3, 3, 3, 2), {"padding": "same"}),
    ],
)
def test_qconv_layers(tmp_path, kind, shape, kernel, kw):
    rng = np.random.default_rng(4)
    k = rng.normal(0, 0.6, kernel).astype(F32)
    n_out = kernel[-1] * (kernel[-2] if kind == "QDepthwiseConv2D" else 1)
    b = rng.normal(0, 0.5, n_out).astype(F32)
    kq, bq = qk("quantized_bits", bits=5, integer=0, alpha=1), qk("quantized_bits", bits=8, integer=2)
    conf = {
        "strides": kw.get("strides", 1),
        "padding": kw["padding"],
        "data_format": "channels_last",
        "dilation_rate": 1,
    }
    if kind == "QDepthwiseConv2D":
        conf.update(kernel_size=list(kernel[:2]), depth_multiplier=kernel[-1], depthwise_quantizer=kq)
        wkey = "depthwise_kernel"
    else:
        conf.update(filters=kernel[-1], kernel_size=list(kernel[:-2]), kernel_quantizer=kq, groups=1)
        wkey = "kernel"
    layers = [
        k2_input("x", shape),
        k2_layer(kind, "conv", "x", activation="quantized_relu(6,2)", use_bias=True, bias_quantizer=bq, **conf),
    ]
    g = read_keras2_json(*write_json_h5(tmp_path, k2_model(layers, ["x"], ["conv"]), {"conv": {wkey: k, "bias": b}}))
    x = rng.integers(-64, 64, (20, *shape)) / 32.0
    want = qk_relu(_keras_conv(kind, x, qk_bits(k, 5, 0), qk_bits(b, 8, 2), **kw), 6, 2)
    np.testing.assert_array_equal(g.evaluate(x)[0], want)


# ----------------------------------------------------------------------------- batch normalization


def bn_params(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return {
        "gamma": rng.uniform(0.3, 2.0, n).astype(F32),
        "beta": rng.normal(0, 0.5, n).astype(F32),
        "moving_mean": rng.normal(0, 1.0, n).astype(F32),
        "moving_variance": rng.uniform(0.1, 3.0, n).astype(F32),
    }


@pytest.mark.parametrize("explicit", [False, True])
def test_qbatchnormalization_inference(tmp_path, explicit):
    """qnormalization.py: gamma, beta, mean, variance through their quantizers (defaults when the
    config leaves them out), then tf.nn.batch_normalization (float32)."""
    p = bn_params(6, 3)
    conf = {"axis": -1, "epsilon": 1e-3, "center": True, "scale": True}
    if explicit:
        conf.update(
            gamma_quantizer=qk("quantized_bits", bits=6, integer=1), beta_quantizer=None,
            mean_quantizer="quantized_bits(8,2)", variance_quantizer=qk("quantized_relu_po2", bits=5, quadratic_approximation=True),
        )  # fmt: skip
    layers = [k2_input("x", (6,)), k2_layer("QBatchNormalization", "bn", "x", **conf)]
    g = read_keras2_json(*write_json_h5(tmp_path, k2_model(layers, ["x"], ["bn"]), {"bn": p}))
    if explicit:
        gq, bq = qk_bits(p["gamma"], 6, 1), p["beta"]
        mq, vq = (
            qk_bits(p["moving_mean"], 8, 2),
            qk_po2(p["moving_variance"], 5, relu=True, quadratic_approximation=True),
        )
    else:  # QBatchNormalization's defaults
        gq, bq = qk_po2(p["gamma"], 6, 2048, relu=True), qk_po2(p["beta"], 5)
        mq, vq = qk_po2(p["moving_mean"], 5), qk_po2(p["moving_variance"], 6, relu=True, quadratic_approximation=True)
    inv = (F32(1) / np.sqrt(F32(vq) + F32(1e-3))) * F32(gq)
    x = np.random.default_rng(0).normal(0, 2, (40, 6)).astype(F32)
    want = x * inv + (F32(bq) - F32(mq) * inv)  # tf.nn.batch_normalization in float32
    np.testing.assert_allclose(g.evaluate(x.astype(np.float64))[0], want, rtol=2e-6, atol=2e-6)
    np.testing.assert_array_equal(g.node("bn").weights["scale"], inv.astype(np.float64))


@pytest.mark.parametrize("kind", ["QDenseBatchnorm", "QConv2DBatchnorm"])
def test_folded_batchnorm_layers(tmp_path, kind):
    """qdense_batchnorm.py / qconv2d_batchnorm.py at inference: inv = gamma * rsqrt(var + eps);
    kernel' = Qk(inv * kernel); bias' = Qb(inv * (bias - mean) + beta); y = act(x . kernel' + bias')."""
    rng = np.random.default_rng(8)
    n = 4
    p = bn_params(n, 5)
    if kind == "QDenseBatchnorm":
        shape, k = (6,), rng.normal(0, 0.5, (6, n)).astype(F32)
        conf = {"units": n}
    else:
        shape, k = (5, 5, 2), rng.normal(0, 0.5, (3, 3, 2, n)).astype(F32)
        conf = {
            "filters": n,
            "kernel_size": [3, 3],
            "strides": [1, 1],
            "padding": "valid",
            "data_format": "channels_last",
            "dilation_rate": [1, 1],
        }
    b = rng.normal(0, 0.3, n).astype(F32)
    kq, bq = qk("quantized_bits", bits=8, integer=1, alpha=1), qk("quantized_bits", bits=10, integer=3, alpha=1)
    layers = [
        k2_input("x", shape),
        k2_layer(kind, "f", "x", activation="quantized_relu(8,3)", use_bias=True, kernel_quantizer=kq, bias_quantizer=bq,
                 axis=-1, epsilon=1e-3, center=True, scale=True, folding_mode="ema_stats_folding", ema_freeze_delay=None, **conf),
    ]  # fmt: skip
    g = read_keras2_json(
        *write_json_h5(
            tmp_path, k2_model(layers, ["x"], ["f"]), {"f": {"kernel": k, "bias": b, **p, "iteration": np.array(7)}}
        )
    )
    inv = (F32(1) / np.sqrt(p["moving_variance"] + F32(1e-3))) * p["gamma"]
    fk, fb = qk_bits(inv * k, 8, 1), qk_bits(inv * (b - p["moving_mean"]) + p["beta"], 10, 3)
    np.testing.assert_array_equal(g.node("f").weights["kernel"], fk)
    np.testing.assert_array_equal(g.node("f").weights["bias"], fb)
    x = rng.integers(-32, 32, (30, *shape)) / 16.0
    lin = (
        x @ fk
        if kind == "QDenseBatchnorm"
        else np.einsum("nijcuv,uvcf->nijf", np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2)), fk)
    )
    np.testing.assert_array_equal(g.evaluate(x)[0], qk_relu(lin + fb, 8, 3))


# ----------------------------------------------------------------------------- refusals


def test_every_unsupported_quantizer_is_listed_in_one_error(tmp_path):
    layers = [
        k2_input("x", (4,)),
        k2_layer("QActivation", "a", "x", activation="quantized_po2(4)"),
        k2_layer("QActivation", "b", "a", activation=qk("quantized_relu", bits=4, integer=1, negative_slope=0.25)),
        k2_layer("QActivation", "c", "b", activation="quantized_bits(4,0,alpha='auto_po2')"),
        k2_layer(
            "QActivation", "d", "c", activation=qk("quantized_bits", bits=4, integer=0, use_stochastic_rounding=True)
        ),
        k2_layer("QActivation", "e", "d", activation="quantized_tanh(4)"),
        k2_layer(
            "QDense",
            "f",
            "e",
            units=2,
            activation="elu",
            kernel_quantizer="quantized_bits(4,0,alpha=0.3)",
            bias_quantizer=None,
        ),
    ]
    w = {"f": {"kernel": np.zeros((4, 2), F32), "bias": np.zeros(2, F32)}}
    with pytest.raises(UnsupportedError) as e:
        read_keras2_json(*write_json_h5(tmp_path, k2_model(layers, ["x"], ["f"]), w))
    msg = str(e.value)
    for needle in (
        "quantized_po2",
        "negative_slope",
        "auto_po2",
        "stochastic",
        "quantized_tanh",
        "'elu'",
        "alpha=0.3",
        "7 unsupported",
    ):
        assert needle in msg, (needle, msg)
    assert "nearest" in msg and "fix:" in msg


def test_string_configs_parse_python_literals():
    assert parse("quantized_bits(8,3,1,alpha=1)") == (
        "quantized_bits",
        {"bits": 8, "integer": 3, "symmetric": 1, "keep_negative": True, "alpha": 1},
    )
    assert parse("quantized_bits(4, 0, keep_negative=False)")[1]["keep_negative"] is False
    assert parse("quantized_relu_po2(6, 2048)")[1]["max_value"] == 2048
    with pytest.raises(ValueError):
        parse("__import__('os').system('true')")
