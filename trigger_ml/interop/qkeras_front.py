"""Google QKeras layers (Keras 2 files) -> import-graph nodes: the handler table `LAYERS`.

Sources: google/qkeras `qkeras/qlayers.py` (QDense, QActivation), `qkeras/qconvolutional.py`
(QConv1D/2D, QDepthwiseConv2D), `qkeras/qnormalization.py` (commits 13c64d94 and 73aebd90),
`qkeras/qdense_batchnorm.py` (2c481af9), `qkeras/qconv2d_batchnorm.py` (25e7803b). A layer computes
its Keras counterpart on quantized weights (the quantizers, `qkeras_quant`, applied at import),
then its activation (a quantizer or a Keras activation name).
"""

from __future__ import annotations

import numpy as np

from trigger_ml.interop.keras_build import Call
from trigger_ml.interop.keras_layers import batchnorm_axis_ok, conv_geometry
from trigger_ml.interop.qkeras_quant import F32, activation, quantized, weight_quantizer

# ----------------------------------------------------------------------------- layers


def qdense(c: Call, xs: list[str] | None) -> str | None:
    cfg = c.config
    act = activation(c, cfg.get("activation"))
    units, use_bias = cfg.get("units"), cfg.get("use_bias", True)
    c.require("kernel", *(["bias"] if use_bias else []))
    kq, bq = (
        weight_quantizer(c, cfg.get("kernel_quantizer"), "kernel"),
        weight_quantizer(c, cfg.get("bias_quantizer"), "bias"),
    )
    if xs is None or act is None or kq is None or bq is None:
        return None
    k = c.weight("kernel", (c.shape(xs[0])[-1], units))
    b = c.weight("bias", (units,)) if use_bias else None
    if k is None or (use_bias and b is None):
        return None
    k, b = quantized(c, kq, k, "kernel"), (quantized(c, bq, b, "bias") if b is not None else None)
    y = c.emit("dense", xs, weights={"kernel": k, **({"bias": b} if b is not None else {})})
    return c.steps(act, y)


def qconv(nd: int, depthwise: bool = False):
    def handler(c: Call, xs: list[str] | None) -> str | None:
        cfg = c.config
        act = activation(c, cfg.get("activation"))
        geo = conv_geometry(c, nd, xs[0] if xs else None)
        use_bias = cfg.get("use_bias", True)
        role = "depthwise_kernel" if depthwise else "kernel"
        c.require(("depthwise_kernel", "kernel") if depthwise else "kernel", *(["bias"] if use_bias else []))
        kq = weight_quantizer(c, cfg.get("depthwise_quantizer" if depthwise else "kernel_quantizer"), role)
        bq = weight_quantizer(c, cfg.get("bias_quantizer"), "bias")
        groups = int(cfg.get("groups", 1) or 1)
        if xs is None or geo is None or act is None or kq is None or bq is None:
            return None
        cin = c.shape(xs[0])[-1]
        if depthwise:
            mult = int(cfg.get("depth_multiplier", 1))
            k = c.weight("depthwise_kernel", (*geo["window"], cin, mult), "kernel")
            n_out, groups = cin * mult, cin
        else:
            n_out = cfg.get("filters")
            k = c.weight("kernel", (*geo["window"], cin // groups, n_out))
        b = c.weight("bias", (n_out,)) if use_bias else None
        if k is None or (use_bias and b is None):
            return None
        k, b = quantized(c, kq, k, role), (quantized(c, bq, b, "bias") if b is not None else None)
        if depthwise:
            k = k.reshape(*geo["window"], 1, -1)
        attrs = {"strides": geo["strides"], "pads": geo["pads"], "dilation": (1,) * nd, "groups": groups}
        y = c.emit("conv", xs, attrs=attrs, weights={"kernel": k, **({"bias": b} if b is not None else {})})
        return c.steps(act, y)

    return handler


def qactivation(c: Call, xs: list[str] | None) -> str | None:
    act = activation(c, c.config.get("activation"))
    if act is None or xs is None:
        return None
    return c.steps(act, xs[0], own=True) if act else xs[0]


# QBatchNormalization's defaults when a config leaves a quantizer out (qnormalization.py, 73aebd90)
QBN_DEFAULTS = {
    "gamma_quantizer": "quantized_relu_po2(6, 2048)",
    "beta_quantizer": "quantized_po2(5)",
    "mean_quantizer": "quantized_po2(5)",
    "variance_quantizer": "quantized_relu_po2(6, quadratic_approximation=True)",
}


def qbatchnorm(c: Call, xs: list[str] | None) -> str | None:
    """Inference: g, b, mu, var through their quantizers, then tf.nn.batch_normalization in float32:
    inv = rsqrt(var + eps) * g, y = x * inv + (b - mu * inv). Float (eps makes inv off every grid)."""
    cfg = c.config
    if cfg.get("inverse_quantizer") is not None:
        c.unsupported("inverse_quantizer is set", "QBatchNormalization without inverse_quantizer")
    ok = batchnorm_axis_ok(c, xs)
    n = c.shape(xs[0])[-1] if xs else None
    center, scale = cfg.get("center", True), cfg.get("scale", True)
    c.require(*(["gamma"] if scale else []), *(["beta"] if center else []), "moving_mean", "moving_variance")

    specs = {q: weight_quantizer(c, cfg.get(q, QBN_DEFAULTS[q]), q.replace("_quantizer", "")) for q in QBN_DEFAULTS}
    if not ok or xs is None or any(s is None for s in specs.values()):
        return None

    def param(key: str, qkey: str, use: bool) -> np.ndarray | None:
        raw = c.weight(key, (n,)) if use else None
        return quantized(c, specs[qkey], raw, key) if raw is not None else None  # type: ignore[arg-type]

    g, beta = param("gamma", "gamma_quantizer", scale), param("beta", "beta_quantizer", center)
    mu, var = param("moving_mean", "mean_quantizer", True), param("moving_variance", "variance_quantizer", True)
    if mu is None or var is None or (scale and g is None) or (center and beta is None):
        return None
    inv = (F32(1.0) / np.sqrt(var.astype(F32) + F32(cfg.get("epsilon", 1e-3)))).astype(F32)
    if g is not None:
        inv = (inv * g.astype(F32)).astype(F32)
    shift = (beta.astype(F32) - mu.astype(F32) * inv) if beta is not None else -(mu.astype(F32) * inv)
    c.note("QBatchNormalization is float (rsqrt(var + eps)); TensorFlow's float32 rsqrt may differ by an ulp")
    return c.emit(
        "scale_shift", xs, weights={"scale": inv.astype(np.float64), "shift": shift.astype(F32).astype(np.float64)}
    )


def folded(nd: int | None):
    """QDenseBatchnorm (nd None) / QConv2DBatchnorm at inference: inv = rsqrt(moving_variance + eps)
    * gamma, kernel' = Qk(inv * kernel), bias' = Qb(inv * (bias - moving_mean) + beta) (float32; the
    bias term is there even with use_bias=False), y = act(x . kernel' + bias')."""

    def handler(c: Call, xs: list[str] | None) -> str | None:
        cfg = c.config
        act = activation(c, cfg.get("activation"))
        geo = conv_geometry(c, nd, xs[0] if xs else None) if nd else {}
        ok = batchnorm_axis_ok(c, [xs[0]] if xs else None) if nd is None else True
        if cfg.get("folding_mode", "ema_stats_folding") not in ("ema_stats_folding", "batch_stats_folding"):
            c.unsupported(f"folding_mode {cfg.get('folding_mode')!r}")
            return None
        kq = weight_quantizer(c, cfg.get("kernel_quantizer"), "kernel")
        bq = weight_quantizer(c, cfg.get("bias_quantizer"), "bias")
        c.require("kernel", *(["bias"] if cfg.get("use_bias", True) else []), "moving_mean", "moving_variance")
        c.require(*(["gamma"] if cfg.get("scale", True) else []), *(["beta"] if cfg.get("center", True) else []))
        if xs is None or geo is None or act is None or not ok or kq is None or bq is None:
            return None
        cin = c.shape(xs[0])[-1]
        n = cfg.get("units") if nd is None else cfg.get("filters")
        raw = {
            "kernel": c.weight("kernel", (cin, n) if nd is None else (*geo["window"], cin, n)),
            "bias": c.weight("bias", (n,)) if cfg.get("use_bias", True) else np.zeros(n),
            "gamma": c.weight("gamma", (n,)) if cfg.get("scale", True) else np.ones(n),
            "beta": c.weight("beta", (n,)) if cfg.get("center", True) else np.zeros(n),
            "mean": c.weight("moving_mean", (n,)),
            "var": c.weight("moving_variance", (n,)),
        }
        if any(v is None for v in raw.values()):
            return None
        f = {key: v.astype(F32) for key, v in raw.items()}  # type: ignore[union-attr]
        inv = (F32(1.0) / np.sqrt(f["var"] + F32(cfg.get("epsilon", 1e-3)))).astype(F32)
        if cfg.get("scale", True):
            inv = (inv * f["gamma"]).astype(F32)
        fb = (inv * (f["bias"] - f["mean"]) + f["beta"]).astype(F32)
        fk = (inv * f["kernel"]).astype(F32)
        k = quantized(c, kq, fk.astype(np.float64), "folded kernel")
        b = quantized(c, bq, fb.astype(np.float64), "folded bias")
        c.note("folded in float32 as QKeras does; TensorFlow's rsqrt may differ by an ulp at a rounding boundary")
        if nd is None:
            y = c.emit("dense", xs, weights={"kernel": k, "bias": b})
        else:
            attrs = {"strides": geo["strides"], "pads": geo["pads"], "dilation": (1,) * nd, "groups": 1}
            y = c.emit("conv", xs, attrs=attrs, weights={"kernel": k, "bias": b})
        return c.steps(act, y)

    return handler


LAYERS = {
    "QDense": qdense,
    "QConv1D": qconv(1),
    "QConv2D": qconv(2),
    "QDepthwiseConv2D": qconv(2, depthwise=True),
    "QActivation": qactivation,
    "QBatchNormalization": qbatchnorm,
    "QDenseBatchnorm": folded(None),
    "QConv2DBatchnorm": folded(2),
}
ALTERNATIVES = {
    "QSeparableConv2D": "QDepthwiseConv2D followed by a 1x1 QConv2D",
    "QSeparableConv1D": "a QConv1D",
    "QDepthwiseConv2DBatchnorm": "QDepthwiseConv2D followed by QBatchNormalization",
    "QAveragePooling2D": "AveragePooling2D followed by a QActivation",
    "QGlobalAveragePooling2D": "GlobalAveragePooling2D followed by a QActivation",
    "QConv2DTranspose": "QConv2D on an explicitly padded input",
    "QSimpleRNN": "no recurrent layers: unroll into QDense layers",
    "QLSTM": "no recurrent layers: unroll into QDense layers",
    "QGRU": "no recurrent layers: unroll into QDense layers",
    "QAdaptiveActivation": "QActivation with a fixed quantizer",
}
