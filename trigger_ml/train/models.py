"""Model builders from a card: the hgq2-native quantized model and its float twin.

Layers a card may use (`LAYERS`, the one registry): dense, conv2d, maxpool2d, flatten.
Both builds share layer names, so the twin's weights map onto the quantized model by name.

Inputs are the data's integer grids with the binary point moved so values are O(1) (same bits,
a power-of-two scale, exact in float32): a feature of format ufixed<W, I> enters as
ufixed<W, 0> (value / 2**I); an image of b-bit counts as ufixed<b, 0> (counts / 2**b). The
input quantizer is frozen on exactly that grid (rounding TRN, overflow WRAP: nothing is lost or
invented, and da4ml takes it). A card may move an image's binary point with
`image_integer_bits` (ufixed<b, I>: counts / 2**(b - I)).

Anomaly models end in their score, computed in the graph: diff = x - reconstruction
(QSubtract; the reconstruction saturates onto the input grid), diff**2 (QMultiply) rounded to
SCORE_FRAC_BITS fractional bits, summed by a frozen all-ones QDense(1). The score is 81 x the
mean squared error of the quantized reconstruction, to 2**-SCORE_FRAC_BITS per crystal; the
card must keep it within 24 bits so that float32 Keras is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import trigger_ml.train  # noqa: F401  (thread settings before TensorFlow loads)
from trigger_ml.config import ModelCard
from trigger_ml.data.dataset import Dataset
from trigger_ml.data.features import FEATURES
from trigger_ml.errors import SchemaError, UnsupportedError

LAYERS: dict[str, set[str]] = {
    "dense": {"units", "activation", "name"},
    "conv2d": {"filters", "kernel", "activation", "name"},
    "maxpool2d": {"pool", "name"},
    "flatten": {"name"},
}
ACTIVATIONS = ("relu", "linear")
SCORE_FRAC_BITS = 6
FLOAT32_EXACT_BITS = 24


def check_layers(card: ModelCard, where: str) -> None:
    """Fail with one clear error on an unknown layer type, key or activation."""
    if not card.layers:
        raise SchemaError(f"{where}: 'layers' is empty")
    for i, spec in enumerate(card.layers):
        kind = spec.get("type")
        if kind not in LAYERS:
            raise UnsupportedError(
                f"{where}: layer {i} has unknown type {kind!r}", f"supported layer types: {sorted(LAYERS)}"
            )
        extra = set(spec) - LAYERS[kind] - {"type"}
        if extra:
            raise SchemaError(f"{where}: layer {i} ({kind}) has unknown key {sorted(extra)[0]!r}",
                              f"keys of {kind}: {sorted(LAYERS[kind])}")
        if spec.get("activation", "linear") not in ACTIVATIONS:
            raise UnsupportedError(f"{where}: layer {i} has activation {spec['activation']!r}",
                                   f"supported activations: {list(ACTIVATIONS)}")
    if card.task == "classifier" and (card.layers[-1].get("type") != "dense" or card.layers[-1].get("units") != 1):
        raise SchemaError(f"{where}: a classifier ends in dense with units: 1 (the logit)")


# --------------------------------------------------------------------------- inputs


def input_shift(card: ModelCard, ds_meta: dict[str, Any]) -> np.ndarray:
    """Power of two dividing each raw input to give the model input."""
    if card.input == "features":
        return np.array([2.0 ** fmt.integer for fmt in FEATURES.values()], dtype=np.float32)
    return np.float32(2.0 ** (int(ds_meta.get("bits", 10)) - card.image_integer_bits))


def model_inputs(card: ModelCard, ds: Dataset) -> np.ndarray:
    """The model's input array for a data set (exact: a power-of-two scale of integer grids)."""
    if card.input == "features":
        return (ds.features / input_shift(card, ds.meta)).astype(np.float32)
    x = ds.images.astype(np.float32) / input_shift(card, ds.meta)
    n, w, _ = ds.images.shape
    return x.reshape(n, w, w, 1) if card.input == "image" else x.reshape(n, w * w)


def input_formats(card: ModelCard, ds_meta: dict[str, Any], shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Integer and fractional bits of each model input (unsigned), broadcast to `shape`."""
    if card.input == "features":
        frac = np.array([fmt.width for fmt in FEATURES.values()], dtype=np.float32)
        return np.zeros_like(frac), frac
    frac = float(int(ds_meta.get("bits", 10)) - card.image_integer_bits)
    return np.full(shape, card.image_integer_bits, np.float32), np.full(shape, frac, np.float32)


def input_shape(card: ModelCard, ds_meta: dict[str, Any]) -> tuple[int, ...]:
    w = int(ds_meta.get("window", 9))
    return {"features": (len(FEATURES),), "image": (w, w, 1), "image_flat": (w * w,)}[card.input]


# --------------------------------------------------------------------------- builders


def _layer_name(spec: dict[str, Any], i: int) -> str:
    return spec.get("name", f"{spec['type']}_{i}")


def build_quantized(card: ModelCard, ds_meta: dict[str, Any]):
    """The hgq2-native quantized model of a card."""
    import keras
    from hgq.config import LayerConfigScope, QuantizerConfig, QuantizerConfigScope
    from hgq.layers import QConv2D, QDense, QMaxPool2D, QMultiply, QSubtract

    q = card.quantization
    shape = input_shape(card, ds_meta)
    i_bits, f_bits = input_formats(card, ds_meta, shape)
    # one frozen format per input element (kif shaped like the input): hls4ml 1.3's DA kernels
    # cannot broadcast a scalar quantizer's kif over a Dense input ("Matrix shapes do not match")
    het = {"homogeneous_axis": (0,)}
    in_conf = QuantizerConfig(
        "kif", "datalane", k0=0,
        i0=keras.initializers.Constant(i_bits if card.input == "features" else float(i_bits.flat[0])),
        f0=keras.initializers.Constant(f_bits if card.input == "features" else float(f_bits.flat[0])),
        round_mode="TRN", overflow_mode="WRAP", trainable=False, **het,
    )
    scopes = (
        QuantizerConfigScope(place="weight", q_type="kbi", b0=q.weight_bits, i0=q.weight_integer,
                             overflow_mode="SAT_SYM", trainable=q.weight_trainable),
        QuantizerConfigScope(place="bias", q_type="kbi", b0=q.bias_bits, i0=q.bias_integer,
                             overflow_mode="WRAP", trainable=q.weight_trainable),
        QuantizerConfigScope(place="datalane", default_q_type="kif", f0=q.act_frac_bits,
                             overflow_mode="WRAP", trainable=q.act_trainable),
        LayerConfigScope(enable_ebops=True, beta0=q.beta[0]),
    )
    with scopes[0], scopes[1], scopes[2], scopes[3]:
        inp = keras.Input(shape, name="x")
        h = inp
        for i, spec in enumerate(card.layers):
            kw: dict[str, Any] = {"name": _layer_name(spec, i)}
            if i == 0:
                kw["iq_conf"] = in_conf
            kind = spec["type"]
            if kind == "dense":
                h = QDense(spec["units"], activation=spec.get("activation"), **kw)(h)
            elif kind == "conv2d":
                h = QConv2D(spec["filters"], spec.get("kernel", 3), activation=spec.get("activation"), **kw)(h)
            elif kind == "maxpool2d":
                h = QMaxPool2D(spec.get("pool", 2), **kw)(h)
            elif kind == "flatten":
                kw.pop("iq_conf", None)
                h = keras.layers.Flatten(name=kw["name"])(h)
        if card.task == "anomaly":
            score_bits = 2 * int(i_bits.flat[0]) + 1 + SCORE_FRAC_BITS + int(np.ceil(np.log2(np.prod(shape))))
            if score_bits > FLOAT32_EXACT_BITS:
                raise SchemaError(f"{card.name}: the anomaly score needs {score_bits} bits, over {FLOAT32_EXACT_BITS}",
                                  "lower image_integer_bits so float32 Keras stays exact")
            rec_conf = QuantizerConfig("kif", "datalane", k0=0, i0=float(i_bits.flat[0]), f0=float(f_bits.flat[0]),
                                       overflow_mode="SAT", trainable=False, **het)
            d = QSubtract(iq_confs=[in_conf, rec_conf], name="diff")([inp, h])
            sq = QMultiply(enable_iq=False, name="square")([d, d])
            sq_conf = QuantizerConfig("kif", "datalane", k0=0, i0=2 * float(i_bits.flat[0]) + 1, f0=SCORE_FRAC_BITS,
                                      overflow_mode="WRAP", trainable=False, **het)
            ones = QuantizerConfig("kif", "weight", k0=0, i0=1, f0=0, trainable=False)
            h = QDense(1, use_bias=False, kernel_initializer="ones", kq_conf=ones, iq_conf=sq_conf,
                       enable_ebops=False, trainable=False, name="score")(sq)
    return keras.Model(inp, h, name=card.name)


def build_float(card: ModelCard, ds_meta: dict[str, Any]):
    """The float twin: same layers and names, no quantizers."""
    import keras

    shape = input_shape(card, ds_meta)
    inp = keras.Input(shape, name="x")
    h = inp
    for i, spec in enumerate(card.layers):
        name, kind = _layer_name(spec, i), spec["type"]
        if kind == "dense":
            h = keras.layers.Dense(spec["units"], activation=spec.get("activation"), name=name)(h)
        elif kind == "conv2d":
            h = keras.layers.Conv2D(spec["filters"], spec.get("kernel", 3), activation=spec.get("activation"), name=name)(h)
        elif kind == "maxpool2d":
            h = keras.layers.MaxPooling2D(spec.get("pool", 2), name=name)(h)
        elif kind == "flatten":
            h = keras.layers.Flatten(name=name)(h)
    if card.task == "anomaly":
        d = keras.layers.Subtract(name="diff")([inp, h])
        sq = keras.layers.Multiply(name="square")([d, d])
        h = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones", trainable=False, name="score")(sq)
    return keras.Model(inp, h, name=f"{card.name}_float")


def reconstruction_model(model):
    """For an anomaly model: the sub-model from the input to the reconstruction (decoder output)."""
    import keras

    diff = model.get_layer("diff")
    rec = diff.input[1] if isinstance(diff.input, (list, tuple)) else diff._inbound_nodes[0].input_tensors[1]
    return keras.Model(model.inputs, rec)


def trainable_layers(card: ModelCard) -> list[str]:
    return [_layer_name(s, i) for i, s in enumerate(card.layers) if s["type"] in ("dense", "conv2d")]


def copy_weights(src, dst, names: list[str]) -> None:
    """Copy kernel and bias by layer name (hgq layers carry extra quantizer variables)."""
    for name in names:
        a, b = src.get_layer(name), dst.get_layer(name)
        b.kernel.assign(a.kernel)
        if getattr(a, "bias", None) is not None and getattr(b, "bias", None) is not None:
            b.bias.assign(a.bias)


Builder = Callable[[ModelCard, dict[str, Any]], Any]
