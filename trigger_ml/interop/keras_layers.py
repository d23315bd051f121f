"""Plain Keras layers (Keras 2 and 3 configs) -> import-graph nodes: the handler table `LAYERS`.

Semantics are Keras's inference semantics, channels-last: Dense on the last axis; Conv1D/2D with
'valid', 'same' (asymmetric as Keras/TF pads: lo = total // 2) or 'causal' (Conv1D) padding,
strides and groups; DepthwiseConv1D/2D as a conv with groups = in_channels (kernel
(*k, cin, multiplier) -> (*k, 1, cin * multiplier), output channel c * multiplier + m as TF orders
it); BatchNormalization folded in float64 to `scale_shift` (scale = gamma / sqrt(var + eps),
shift = beta - mean * scale); pooling with Keras's padding (average pooling ignores the padded
zeros, as TF does); Dropout and the other training-only noise layers dropped.
"""

from __future__ import annotations

import numpy as np

from trigger_ml.interop.ir import SELU_ALPHA, SELU_SCALE
from trigger_ml.interop.keras_build import Call, Handler, Step, channel_axis_last, same_pads, tuple_of

# Keras activation names -> steps (linear: none)
ACTIVATIONS: dict[str, list[Step]] = {
    "linear": [],
    "relu": [Step("relu")],
    "relu6": [Step("clip", {"lo": 0.0, "hi": 6.0})],
    "sigmoid": [Step("sigmoid")],
    "tanh": [Step("tanh")],
    "selu": [Step("selu", {"alpha": SELU_ALPHA, "gamma": SELU_SCALE})],
    "softmax": [Step("softmax", {"axis": -1})],
}
NOISE = (
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
)

ALTERNATIVES: dict[str, str] = {
    "Lambda": "none: a Lambda layer holds Python code, which import never runs; rebuild it from the supported layers",
    "LeakyReLU": "ReLU (or a QActivation quantized_relu)",
    "PReLU": "ReLU",
    "ELU": "ReLU",
    "SeparableConv2D": "DepthwiseConv2D followed by a 1x1 Conv2D",
    "SeparableConv1D": "DepthwiseConv1D followed by a kernel-1 Conv1D",
    "Conv2DTranspose": "UpSampling is not supported either; a Conv2D on an explicitly padded input",
    "Conv3D": "Conv2D",
    "LSTM": "no recurrent layers: unroll into Dense layers",
    "GRU": "no recurrent layers: unroll into Dense layers",
    "SimpleRNN": "no recurrent layers: unroll into Dense layers",
    "Embedding": "Dense on one-hot inputs",
    "LayerNormalization": "BatchNormalization (inference statistics)",
    "Sequential": "flatten the nested model into the outer one",
    "Functional": "flatten the nested model into the outer one",
    "Model": "flatten the nested model into the outer one",
    "TFOpLambda": "none: a TensorFlow op recorded as a layer; rebuild it from the supported layers",
}


def activation_steps(c: Call, act: object, where: str = "activation") -> list[Step] | None:
    """A Keras activation name (or serialized activation) -> steps; None after recording a problem."""
    if act is None:
        return []
    name = act.get("class_name") if isinstance(act, dict) else act
    if isinstance(name, str) and name.lower() in ACTIVATIONS:
        return ACTIVATIONS[name.lower()]
    c.unsupported(f"{where} {act!r} is not supported", f"one of {', '.join(ACTIVATIONS)}")
    return None


def _channels_last(c: Call) -> bool:
    fmt = c.config.get("data_format")
    if fmt not in (None, "channels_last"):
        c.unsupported(f"data_format {fmt!r}", "channels_last (re-export the model channels-last)")
        return False
    return True


def _keras3_quantized(c: Call) -> bool:
    dt = c.config.get("dtype")
    name = dt.get("config", {}).get("name") if isinstance(dt, dict) else dt
    if isinstance(name, str) and (name.startswith(("int", "float8")) or "_from_" in name):
        c.unsupported(f"Keras 3 quantized dtype policy {name!r}", "a float model, or QKeras / hgq2 quantizers")
        return True
    if c.config.get("quantization_config"):
        c.unsupported("Keras 3 quantization_config", "a float model, or QKeras / hgq2 quantizers")
        return True
    return False


# ----------------------------------------------------------------------------- weighted layers


def dense(c: Call, xs: list[str] | None) -> str | None:
    act = activation_steps(c, c.config.get("activation"))
    c.require("kernel", *(["bias"] if c.config.get("use_bias", True) else []))
    units = c.config.get("units")
    if not isinstance(units, int):
        c.schema(f"units {units!r}")
        return None
    if _keras3_quantized(c) or act is None or xs is None:
        return None
    n_in = c.shape(xs[0])[-1]
    k = c.weight("kernel", (n_in, units))
    b = c.weight("bias", (units,)) if c.config.get("use_bias", True) else None
    if k is None or (c.config.get("use_bias", True) and b is None):
        return None
    y = c.emit("dense", xs, weights={"kernel": k, **({"bias": b} if b is not None else {})})
    return c.steps(act, y)


def conv_geometry(c: Call, nd: int, x: str | None) -> dict | None:
    """strides, pads, dilation of a Conv{nd}D-like layer (None after recording a problem)."""
    cfg = c.config
    try:
        window = tuple_of(cfg.get("kernel_size"), nd, "kernel_size")
        strides = tuple_of(cfg.get("strides", 1), nd, "strides")
        dil = tuple_of(cfg.get("dilation_rate", 1), nd, "dilation_rate")
    except ValueError as exc:
        c.schema(str(exc))
        return None
    ok = _channels_last(c)
    if any(d != 1 for d in dil):
        c.unsupported(f"dilation_rate {list(dil)}", "dilation 1 (a dilated kernel written out with zeros)")
        ok = False
    pad = cfg.get("padding", "valid")
    if pad not in ("valid", "same") and not (pad == "causal" and nd == 1):
        c.unsupported(f"padding {pad!r}", "'valid' or 'same' (or ZeroPadding before a 'valid' conv)")
        ok = False
    if not ok or x is None:
        return None
    size = c.shape(x)[:-1]
    if pad == "same":
        pads = same_pads(size, window, strides)
    elif pad == "causal":
        pads = ((window[0] - 1, 0),)
    else:
        pads = ((0, 0),) * nd
    return {"window": window, "strides": strides, "pads": pads}


def conv(nd: int) -> Handler:
    def handler(c: Call, xs: list[str] | None) -> str | None:
        act = activation_steps(c, c.config.get("activation"))
        c.require("kernel", *(["bias"] if c.config.get("use_bias", True) else []))
        geo = conv_geometry(c, nd, xs[0] if xs else None)
        filters, groups = c.config.get("filters"), int(c.config.get("groups", 1) or 1)
        if act is None or geo is None or _keras3_quantized(c) or xs is None:
            return None
        cin = c.shape(xs[0])[-1]
        if cin % groups or filters % groups:
            c.schema(f"groups {groups} does not divide {cin} input and {filters} output channels")
            return None
        k = c.weight("kernel", (*geo["window"], cin // groups, filters))
        use_bias = c.config.get("use_bias", True)
        b = c.weight("bias", (filters,)) if use_bias else None
        if k is None or (use_bias and b is None):
            return None
        attrs = {"strides": geo["strides"], "pads": geo["pads"], "dilation": (1,) * nd, "groups": groups}
        y = c.emit("conv", xs, attrs=attrs, weights={"kernel": k, **({"bias": b} if b is not None else {})})
        return c.steps(act, y)

    return handler


def depthwise(nd: int) -> Handler:
    def handler(c: Call, xs: list[str] | None) -> str | None:
        act = activation_steps(c, c.config.get("activation"))
        c.require(("kernel", "depthwise_kernel"), *(["bias"] if c.config.get("use_bias", True) else []))
        geo = conv_geometry(c, nd, xs[0] if xs else None)
        mult = int(c.config.get("depth_multiplier", 1))
        if act is None or geo is None or _keras3_quantized(c) or xs is None:
            return None
        cin = c.shape(xs[0])[-1]
        k = c.weight("kernel", (*geo["window"], cin, mult), "depthwise_kernel")
        use_bias = c.config.get("use_bias", True)
        b = c.weight("bias", (cin * mult,)) if use_bias else None
        if k is None or (use_bias and b is None):
            return None
        attrs = {"strides": geo["strides"], "pads": geo["pads"], "dilation": (1,) * nd, "groups": cin}
        kernel = k.reshape(*geo["window"], 1, cin * mult)
        y = c.emit("conv", xs, attrs=attrs, weights={"kernel": kernel, **({"bias": b} if b is not None else {})})
        return c.steps(act, y)

    return handler


def batchnorm_axis_ok(c: Call, xs: list[str] | None) -> bool:
    if xs is None:
        return True
    rank = len(c.shape(xs[0])) + 1
    if not channel_axis_last(c.config.get("axis", -1), rank - 1):
        c.unsupported(
            f"axis {c.config.get('axis')!r} is not the channel (last) axis", "batch normalization over the last axis"
        )
        return False
    return True


def batchnorm(c: Call, xs: list[str] | None) -> str | None:
    cfg = c.config
    if cfg.get("renorm") or cfg.get("virtual_batch_size"):
        c.unsupported("renorm / virtual_batch_size")
    c.require(*(["gamma"] if cfg.get("scale", True) else []), *(["beta"] if cfg.get("center", True) else []))
    c.require("moving_mean", "moving_variance")
    if not batchnorm_axis_ok(c, xs) or xs is None:
        return None
    n = c.shape(xs[0])[-1]
    gamma = c.weight("gamma", (n,)) if cfg.get("scale", True) else np.ones(n)
    beta = c.weight("beta", (n,)) if cfg.get("center", True) else np.zeros(n)
    mean, var = c.weight("moving_mean", (n,)), c.weight("moving_variance", (n,))
    if gamma is None or beta is None or mean is None or var is None:
        return None
    scale = gamma / np.sqrt(var + float(cfg.get("epsilon", 1e-3)))
    return c.emit("scale_shift", xs, weights={"scale": scale, "shift": beta - mean * scale})


# ----------------------------------------------------------------------------- activations


def activation(c: Call, xs: list[str] | None) -> str | None:
    act = activation_steps(c, c.config.get("activation"))
    return c.steps(act, xs[0], own=True) if act is not None and xs else None


def relu_layer(c: Call, xs: list[str] | None) -> str | None:
    cfg = c.config
    slope, thr, top = cfg.get("negative_slope") or 0.0, cfg.get("threshold") or 0.0, cfg.get("max_value")
    if slope or thr:
        c.unsupported(f"ReLU with negative_slope {slope} / threshold {thr}", "ReLU (slope 0, threshold 0)")
        return None
    if xs is None:
        return None
    return c.emit("relu", xs) if top is None else c.emit("clip", xs, attrs={"lo": 0.0, "hi": float(top)})


def softmax_layer(c: Call, xs: list[str] | None) -> str | None:
    axis = c.config.get("axis", -1)
    if xs is None:
        return None
    rank = len(c.shape(xs[0]))
    if not channel_axis_last(axis, rank):
        c.unsupported(f"softmax over axis {axis}", "softmax over the last axis")
        return None
    return c.emit("softmax", xs, attrs={"axis": -1})


# ----------------------------------------------------------------------------- pooling and shapes


def pool(nd: int, kind: str) -> Handler:
    def handler(c: Call, xs: list[str] | None) -> str | None:
        cfg = c.config
        try:
            size = tuple_of(cfg.get("pool_size", 2), nd, "pool_size")
            strides = tuple_of(cfg.get("strides") or size, nd, "strides")
        except ValueError as exc:
            c.schema(str(exc))
            return None
        pad = cfg.get("padding", "valid")
        if pad not in ("valid", "same"):
            c.unsupported(f"padding {pad!r}", "'valid' or 'same'")
            return None
        if not _channels_last(c) or xs is None:
            return None
        pads = same_pads(c.shape(xs[0])[:-1], size, strides) if pad == "same" else ((0, 0),) * nd
        return c.emit(kind, xs, attrs={"pool": size, "strides": strides, "pads": pads, "count_pad": False})

    return handler


def global_pool(kind: str) -> Handler:
    def handler(c: Call, xs: list[str] | None) -> str | None:
        if not _channels_last(c) or xs is None:
            return None
        y = c.emit(kind, xs)
        if c.config.get("keepdims") and y is not None:
            n = len(c.shape(xs[0]))
            y = c.emit("reshape", [y], "keepdims", {"shape": (1,) * (n - 1) + (c.shape(y)[-1],)})
        return y

    return handler


def flatten(c: Call, xs: list[str] | None) -> str | None:
    if not _channels_last(c) or xs is None:
        return None
    return c.emit("flatten", xs)


def reshape(c: Call, xs: list[str] | None) -> str | None:
    target = c.config.get("target_shape")
    if not isinstance(target, (list, tuple)) or not all(isinstance(d, int) for d in target):
        c.schema(f"target_shape {target!r}")
        return None
    if xs is None:
        return None
    shape = list(target)
    if shape.count(-1) == 1:
        known = int(np.prod([d for d in shape if d != -1]))
        shape[shape.index(-1)] = int(np.prod(c.shape(xs[0]))) // max(known, 1)
    if int(np.prod(shape)) != int(np.prod(c.shape(xs[0]))):
        c.schema(f"target_shape {list(target)} does not hold its input of shape {c.shape(xs[0])}")
        return None
    return c.emit("reshape", xs, attrs={"shape": tuple(shape)})


def permute(c: Call, xs: list[str] | None) -> str | None:
    dims = c.config.get("dims")
    if not isinstance(dims, (list, tuple)) or sorted(dims) != list(range(1, len(dims) + 1)):
        c.schema(f"dims {dims!r} is not a permutation of 1..n")
        return None
    if xs is None:
        return None
    return c.emit("transpose", xs, attrs={"perm": tuple(int(d) - 1 for d in dims)})


def zero_padding(nd: int) -> Handler:
    def handler(c: Call, xs: list[str] | None) -> str | None:
        p = c.config.get("padding", 1)
        try:
            if isinstance(p, int):
                pads = ((p, p),) * nd
            elif nd == 1:
                pads = (tuple_of(p, 2, "padding"),)
            elif all(isinstance(v, int) for v in p):
                pads = tuple((int(v), int(v)) for v in tuple_of(p, nd, "padding"))
            else:
                pads = tuple(tuple_of(v, 2, "padding") for v in p)
        except (ValueError, TypeError):
            c.schema(f"padding {p!r}")
            return None
        if not _channels_last(c) or xs is None:
            return None
        return c.emit("pad", xs, attrs={"pads": pads})

    return handler


def dropped(c: Call, xs: list[str] | None) -> str | None:
    """Training-only layers: the identity at inference, no node."""
    return xs[0] if xs else None


# ----------------------------------------------------------------------------- merges


def merge(op: str) -> Handler:
    def handler(c: Call, xs: list[str] | None) -> str | None:
        if xs is None:
            return None
        if len(xs) < 2 or (op == "sub" and len(xs) != 2):
            c.schema(f"{len(xs)} input(s)")
            return None
        y: str | None = xs[0]
        for k, x in enumerate(xs[1:]):
            if y is None:
                return None
            y = c.emit(op, [y, x], "" if k == len(xs) - 2 else f"{op}{k}")
        return y

    return handler


def average(c: Call, xs: list[str] | None) -> str | None:
    if xs is None or len(xs) < 2:
        return None
    y: str | None = xs[0]
    for k, x in enumerate(xs[1:]):
        y = c.emit("add", [y, x], f"add{k}") if y is not None else None
    if y is None:
        return None
    n = c.shape(y)[-1]
    return c.emit("scale_shift", [y], weights={"scale": np.full(n, 1.0 / len(xs)), "shift": np.zeros(n)})


def concatenate(c: Call, xs: list[str] | None) -> str | None:
    axis = c.config.get("axis", -1)
    if xs is None:
        return None
    if not isinstance(axis, int) or axis == 0:
        c.unsupported(f"concatenation over axis {axis!r}", "a feature axis (not the batch)")
        return None
    return c.emit("concat", xs, attrs={"axis": axis if axis < 0 else axis - 1})


LAYERS: dict[str, Handler] = {
    "Dense": dense,
    "Conv1D": conv(1),
    "Conv2D": conv(2),
    "DepthwiseConv1D": depthwise(1),
    "DepthwiseConv2D": depthwise(2),
    "BatchNormalization": batchnorm,
    "Activation": activation,
    "ReLU": relu_layer,
    "Softmax": softmax_layer,
    "MaxPooling1D": pool(1, "maxpool"),
    "MaxPooling2D": pool(2, "maxpool"),
    "AveragePooling1D": pool(1, "avgpool"),
    "AveragePooling2D": pool(2, "avgpool"),
    "GlobalAveragePooling1D": global_pool("global_avgpool"),
    "GlobalAveragePooling2D": global_pool("global_avgpool"),
    "GlobalMaxPooling1D": global_pool("global_maxpool"),
    "GlobalMaxPooling2D": global_pool("global_maxpool"),
    "Flatten": flatten,
    "Reshape": reshape,
    "Permute": permute,
    "ZeroPadding1D": zero_padding(1),
    "ZeroPadding2D": zero_padding(2),
    "Add": merge("add"),
    "Subtract": merge("sub"),
    "Multiply": merge("mul"),
    "Maximum": merge("max"),
    "Average": average,
    "Concatenate": concatenate,
    **{name: dropped for name in NOISE},
}
