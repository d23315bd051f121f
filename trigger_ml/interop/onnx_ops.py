"""Standard ONNX ops on the data path -> `ir` ops (`HANDLERS`; each `op(reader, node, attrs)`).

Layouts follow `onnx_front`: Conv, pools and Pad take channels-last IR tensors (`canonical`),
Flatten, Reshape and MatMul on rank > 2 the file's own order (`identity`); Transpose, Squeeze and
Unsqueeze only change the layout record. A constant operand (bias, scale) is broadcast into the
tensor's IR order (`Reader.const_ir`); an Add/Sub/Mul/Div by a constant is a `scale_shift` (a
division by a number that is not a power of two is marked `attrs['float']`), BatchNormalization
a `scale_shift` in float64 marked likewise. A weight that a Quant made from integer codes with a
scale that is not a power of two becomes those codes and a `scale_shift` after the dense/conv
(`attrs['weight_scale']`); a Gemm alpha that is not a power of two is folded into the kernel
(`attrs['folded_scale']`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trigger_ml.interop.onnx_load import Refuse, Tensor, all_pow2

SELU_ALPHA, SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875


def canonical(rank: int) -> tuple[int, ...]:
    """Channels-last order of an ONNX rank (batch included): NC -> C, NCHW -> HWC."""
    return tuple(range(2, rank)) + ((1,) if rank >= 2 else ())


def identity(rank: int) -> tuple[int, ...]:
    return tuple(range(1, rank))


def op_Identity(r, node, a) -> None:
    r.t[node.output[0]] = r.data(node)


def op_Dropout(r, node, a) -> None:
    op_Identity(r, node, a)


def op_Cast(r, node, a) -> None:
    from onnx import TensorProto

    if a.get("to") not in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16):
        raise Refuse(f"cast to a non-float type ({a.get('to')}) on the data path")
    op_Identity(r, node, a)


def op_Relu(r, node, a) -> None:
    r.unary(node, "relu")


def op_Sigmoid(r, node, a) -> None:
    r.unary(node, "sigmoid")


def op_Tanh(r, node, a) -> None:
    r.unary(node, "tanh")


def op_Selu(r, node, a) -> None:
    r.unary(node, "selu", {"alpha": a.get("alpha", SELU_ALPHA), "gamma": a.get("gamma", SELU_GAMMA)})


def op_Softmax(r, node, a) -> None:
    t = r.data(node)
    rank = len(t.shape)
    axis = a.get("axis", 1 if r.opset < 13 else -1) % rank
    if axis == 0 or (r.opset < 13 and axis != rank - 1 and any(t.shape[j] != 1 for j in range(axis + 1, rank))):
        raise Refuse(f"softmax over axis {axis} of a tensor of shape {t.shape}")
    j = t.perm.index(axis)
    r.unary(node, "softmax", {"axis": j - len(t.perm)})


def op_Clip(r, node, a) -> None:
    lo = a.get("min", -np.inf) if r.opset < 11 else r.const(node, 1, -np.inf)
    hi = a.get("max", np.inf) if r.opset < 11 else r.const(node, 2, np.inf)
    r.unary(node, "clip", {"lo": float(lo), "hi": float(hi)})


def op_Neg(r, node, a) -> None:
    r.unary(node, "scale_shift", weights={"scale": -1.0, "shift": 0.0})


def op_Pow(r, node, a) -> None:
    e = r.const(node, 1)
    if np.all(e == 1):
        op_Identity(r, node, a)
    elif np.all(e == 2):
        t = r.data(node)
        r.same(node, t, r.emit("mul", [t.name, t.name], node.output[0], onnx=(node, node.input[0], node.output[0])))
    else:
        raise Refuse(f"power {np.ravel(e)[:3].tolist()} of a computed tensor (1 and 2 are supported)")


def _binary(r, node, op: str) -> None:
    ta, tb = (r.t.get(i) for i in node.input[:2])
    if ta is not None and tb is not None:
        if op == "Div":
            raise Refuse("division of two computed tensors")
        if len(ta.shape) != len(tb.shape):
            raise Refuse(f"operands of ranks {len(ta.shape)} and {len(tb.shape)}")
        tb = r.to_perm(tb, ta.perm) if ta.perm != tb.perm else tb
        shape = np.broadcast_shapes(ta.shape, tb.shape)
        out = r.emit(op.lower(), [ta.name, tb.name], node.output[0])
        r.t[node.output[0]] = Tensor(out, shape, ta.perm)
        return
    first = ta is not None
    t = ta if first else tb
    c = r.const_ir(r.const(node, 1 if first else 0), t)
    origin = (node, node.input[0 if first else 1], node.output[0])
    if op == "Max":
        if c.ndim:
            raise Refuse("maximum with a constant that is not a scalar")
        out = r.emit("clip", [t.name], node.output[0], {"lo": float(c), "hi": np.inf}, onnx=origin)
        return r.same(node, t, out)
    if op == "Div" and not first:
        raise Refuse("a constant divided by a computed tensor")
    scale, shift = {
        "Add": (1.0, c),
        "Sub": (1.0, -c) if first else (-1.0, c),
        "Mul": (c, 0.0),
        "Div": (1.0 / c, 0.0),
    }[op]
    attrs = {}
    if op == "Div" and not all_pow2(c):
        attrs["float"] = f"division by {np.ravel(c)[:3].tolist()} (not a power of two)"
    out = r.emit("scale_shift", [t.name], node.output[0], attrs, {"scale": scale, "shift": shift}, origin)
    r.same(node, t, out)


def op_Add(r, node, a) -> None:
    _binary(r, node, "Add")


def op_Sub(r, node, a) -> None:
    _binary(r, node, "Sub")


def op_Mul(r, node, a) -> None:
    _binary(r, node, "Mul")


def op_Div(r, node, a) -> None:
    _binary(r, node, "Div")


def op_Max(r, node, a) -> None:
    if len(node.input) != 2:
        raise Refuse(f"Max of {len(node.input)} inputs (2 are supported)")
    _binary(r, node, "Max")


def _dense(r, node, t: Tensor, kernel: np.ndarray, bias: np.ndarray | None, weight: str, alpha: float = 1.0):
    """y = t @ kernel (+ bias) on t's last ONNX axis; a weight that a Quant made from integer codes
    with a scale that is not a power of two becomes the codes and a scale_shift after (exact)."""
    if len(t.shape) > 2:
        t = r.to_perm(t, identity(len(t.shape)))
    codes = r.codes.get(weight)
    attrs: dict[str, Any] = {}
    post = None
    if codes is not None:
        c, s = codes
        s = np.broadcast_to(s, c.shape)
        if np.all(s == s[:1]):  # one scale per output column: y = (x @ codes) * s + b
            kernel, post = c.astype(np.float64), s[0].astype(np.float64) * alpha
    elif alpha != 1.0:
        kernel = kernel * alpha
        if not all_pow2(np.asarray(alpha)):
            attrs["folded_scale"] = np.asarray(alpha, np.float64)
    origin = (node, node.input[0], node.output[0])
    w = {"kernel": kernel}
    if bias is not None and post is None:
        w["bias"] = np.broadcast_to(bias, kernel.shape[-1:]).astype(np.float64)
    out = r.emit("dense", [t.name], node.output[0], attrs, w, None if post is not None else origin)
    if post is not None:
        shift = np.zeros(kernel.shape[-1]) if bias is None else np.broadcast_to(bias, kernel.shape[-1:])
        out = r.emit("scale_shift", [out], node.output[0], {"weight_scale": post}, {"scale": post, "shift": shift})
    r.t[node.output[0]] = Tensor(out, (*t.shape[:-1], kernel.shape[-1]), t.perm)


def op_MatMul(r, node, a) -> None:
    t = r.data(node)
    w = r.const(node, 1)
    if w.ndim != 2 or len(t.shape) < 2:
        raise Refuse(f"MatMul of shapes {t.shape} and {w.shape} (a 2-D constant weight is supported)")
    _dense(r, node, t, w.astype(np.float64), None, node.input[1])


def op_Gemm(r, node, a) -> None:
    t = r.data(node)
    if a.get("transA", 0) or len(t.shape) != 2:
        raise Refuse("Gemm with transA=1 or an input that is not 2-D")
    w = r.const(node, 1).astype(np.float64)
    name = node.input[1]
    if a.get("transB", 0):
        w = w.T
        if name in r.codes:
            c, s = r.codes[name]
            r.codes[name + "__T"] = (c.T, np.broadcast_to(s, c.shape).T)
            name += "__T"
    c = r.const(node, 2)
    bias = None if c is None else (a.get("beta", 1.0) * np.asarray(c, np.float64)).reshape(-1)
    if bias is not None and bias.size not in (1, w.shape[1]):
        raise Refuse(f"Gemm bias of shape {np.shape(c)}")
    _dense(r, node, t, w, bias, name, float(a.get("alpha", 1.0)))


def _window(r, t: Tensor, a: dict, kernel: tuple[int, ...]) -> tuple:
    nd = len(kernel)
    strides = tuple(a.get("strides", (1,) * nd))
    if any(d != 1 for d in a.get("dilations", (1,) * nd)):
        raise Refuse(f"dilations {a['dilations']} (only 1 is supported)")
    size = t.shape[2:]
    auto = a.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        total = [max((-(-n // s) - 1) * s + k - n, 0) for n, s, k in zip(size, strides, kernel)]
        lo = [p // 2 if auto == "SAME_UPPER" else p - p // 2 for p in total]
        pads = tuple((lo_, p - lo_) for lo_, p in zip(lo, total))
    elif auto == "VALID":
        pads = ((0, 0),) * nd
    else:
        p = a.get("pads", (0,) * (2 * nd))
        pads = tuple((p[j], p[j + nd]) for j in range(nd))
    if any(v < 0 for pr in pads for v in pr):
        raise Refuse(f"negative pads {pads}")
    if a.get("ceil_mode", 0):
        floor = [(n + p0 + p1 - k) // s + 1 for n, (p0, p1), k, s in zip(size, pads, kernel, strides)]
        ceil = [-(-(n + p0 + p1 - k) // s) + 1 for n, (p0, p1), k, s in zip(size, pads, kernel, strides)]
        if floor != ceil:
            raise Refuse("ceil_mode=1 changes the output size here (supported: ceil_mode=0)")
    return strides, pads


def op_Conv(r, node, a) -> None:
    t = r.data(node)
    if len(t.shape) < 3:
        raise Refuse(f"Conv of a tensor of shape {t.shape}")
    t = r.to_perm(t, canonical(len(t.shape)))
    w = r.const(node, 1).astype(np.float64)
    b = r.const(node, 2)
    groups = int(a.get("group", 1))
    cin, nd = t.shape[1], w.ndim - 2
    if cin % groups or w.shape[1] * groups != cin or w.shape[0] % groups:
        raise Refuse(f"group {groups} with {cin} input channels and a kernel of shape {w.shape}")
    strides, pads = _window(r, t, a, w.shape[2:])
    post = None
    if node.input[1] in r.codes:  # integer codes, one scale per output channel: the scale after the conv
        codes, s = r.codes[node.input[1]]
        if np.all(s == s.reshape(len(s), -1)[:, :1].reshape((len(s),) + (1,) * (s.ndim - 1))):
            w, post = codes, s.reshape(len(s), -1)[:, 0]
    kernel = w.transpose(*range(2, 2 + nd), 1, 0)
    weights = (
        {"kernel": kernel} if b is None or post is not None else {"kernel": kernel, "bias": np.asarray(b, np.float64)}
    )
    attrs = {"strides": strides, "pads": pads, "groups": groups, "dilation": (1,) * nd}
    origin = None if post is not None else (node, node.input[0], node.output[0])
    out = r.emit("conv", [t.name], node.output[0], attrs, weights, origin)
    if post is not None:
        shift = np.zeros(len(post)) if b is None else np.asarray(b, np.float64)
        out = r.emit("scale_shift", [out], node.output[0], {"weight_scale": post}, {"scale": post, "shift": shift})
    ir_shape = r.vals[out].shape[1:]
    r.t[node.output[0]] = Tensor(out, (1, ir_shape[-1], *ir_shape[:-1]), canonical(len(t.shape)))


def _pool(r, node, a, op: str) -> None:
    t = r.data(node)
    if len(node.output) > 1 and node.output[1]:
        raise Refuse("MaxPool's indices output")
    if len(t.shape) < 3:
        raise Refuse(f"pooling a tensor of shape {t.shape}")
    t = r.to_perm(t, canonical(len(t.shape)))
    kernel = tuple(a["kernel_shape"])
    strides, pads = _window(r, t, a, kernel)
    attrs = {"pool": kernel, "strides": strides, "pads": pads}
    if op == "avgpool":
        attrs["count_pad"] = bool(a.get("count_include_pad", 0))
    out = r.emit(op, [t.name], node.output[0], attrs, onnx=(node, node.input[0], node.output[0]))
    ir_shape = r.vals[out].shape[1:]
    r.t[node.output[0]] = Tensor(out, (1, ir_shape[-1], *ir_shape[:-1]), t.perm)


def op_MaxPool(r, node, a) -> None:
    _pool(r, node, a, "maxpool")


def op_AveragePool(r, node, a) -> None:
    _pool(r, node, a, "avgpool")


def _global(r, node, op: str) -> None:
    t = r.data(node)
    if len(t.shape) < 3:
        raise Refuse(f"global pooling of a tensor of shape {t.shape}")
    t = r.to_perm(t, canonical(len(t.shape)))
    out = r.emit(op, [t.name], node.output[0] + "__g", onnx=(node, node.input[0], node.output[0]))
    shape = (1, t.shape[1], *(1,) * (len(t.shape) - 2))
    out = r.emit("reshape", [out], node.output[0], {"shape": tuple(shape[a] for a in t.perm)})
    r.t[node.output[0]] = Tensor(out, shape, t.perm)


def op_GlobalAveragePool(r, node, a) -> None:
    _global(r, node, "global_avgpool")


def op_GlobalMaxPool(r, node, a) -> None:
    _global(r, node, "global_maxpool")


def op_BatchNormalization(r, node, a) -> None:
    t = r.data(node)
    if a.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
        raise Refuse("batch normalization in training mode")
    gamma, beta, mean, var = (np.asarray(r.const(node, j), np.float64) for j in (1, 2, 3, 4))
    scale = gamma / np.sqrt(var + float(np.float32(a.get("epsilon", 1e-5))))
    shift = beta - mean * scale
    per = (1, len(gamma), *(1,) * (len(t.shape) - 2))
    w = {"scale": r.const_ir(scale.reshape(per), t), "shift": r.const_ir(shift.reshape(per), t)}
    r.unary(node, "scale_shift", {"float": "batch normalization"}, w)


def op_Flatten(r, node, a) -> None:
    t = r.data(node)
    axis = a.get("axis", 1) % max(len(t.shape), 1)
    if axis == 0:
        r.notes.append(f"Flatten {node.name or node.output[0]!r} with axis=0 read as axis=1 (valid for batch 1)")
    elif int(np.prod(t.shape[1:axis])) != 1:
        raise Refuse(f"Flatten axis={axis} of shape {t.shape} merges axes with the batch")
    t = r.to_perm(t, identity(len(t.shape)))
    out = r.emit("flatten", [t.name], node.output[0], onnx=(node, node.input[0], node.output[0]))
    r.t[node.output[0]] = Tensor(out, (1, int(np.prod(t.shape))), (1,))


def _reshaped(r, node, t: Tensor, shape: tuple[int, ...]) -> None:
    """t viewed with ONNX shape `shape` (batch first): layout kept when only size-1 axes change."""
    if len(shape) < 2 or shape[0] != 1:
        raise Refuse(f"reshape {t.shape} -> {shape} moves the batch axis")
    old = [t.shape[a] for a in range(1, len(t.shape)) if t.shape[a] != 1]
    new = [d for d in shape[1:] if d != 1]
    if old == new:
        big_new = [a for a in range(1, len(shape)) if shape[a] != 1]
        big_old = [a for a in range(1, len(t.shape)) if t.shape[a] != 1]
        order = [big_new[big_old.index(a)] for a in t.perm if t.shape[a] != 1]
        ones = [a for a in range(1, len(shape)) if shape[a] == 1]
        perm = next(
            (p for p in (canonical(len(shape)), identity(len(shape))) if [a for a in p if shape[a] != 1] == order),
            tuple(order + ones),
        )
    else:
        t = r.to_perm(t, identity(len(t.shape)))
        perm = identity(len(shape))
    ir_shape = tuple(shape[a] for a in perm)
    out = t.name
    if ir_shape != r.ir_shape(t):
        out = r.emit("reshape", [t.name], node.output[0], {"shape": ir_shape})
    r.t[node.output[0]] = Tensor(out, tuple(shape), perm)


def op_Reshape(r, node, a) -> None:
    t = r.data(node)
    target = [int(v) for v in np.asarray(r.const(node, 1)).ravel()]
    if not a.get("allowzero", 0):
        target = [t.shape[j] if v == 0 else v for j, v in enumerate(target)]
    if target.count(-1) == 1:
        rest = int(np.prod([v for v in target if v != -1]))
        target[target.index(-1)] = int(np.prod(t.shape)) // max(rest, 1)
    if int(np.prod(target)) != int(np.prod(t.shape)):
        raise Refuse(f"reshape {t.shape} -> {target}")
    _reshaped(r, node, t, tuple(target))


def op_Transpose(r, node, a) -> None:
    t = r.data(node)
    p = list(a.get("perm", range(len(t.shape))[::-1]))
    if p[0] != 0:
        raise Refuse(f"transpose {p} moves the batch axis")
    r.t[node.output[0]] = Tensor(t.name, tuple(t.shape[j] for j in p), tuple(p.index(j) for j in t.perm))


def _axes(r, node, a) -> list[int]:
    axes = a.get("axes") if r.opset < 13 else r.const(node, 1)
    return [] if axes is None else [int(v) for v in np.ravel(axes)]


def op_Squeeze(r, node, a) -> None:
    t = r.data(node)
    axes = [v % len(t.shape) for v in _axes(r, node, a)] or [j for j in range(1, len(t.shape)) if t.shape[j] == 1]
    if 0 in axes or any(t.shape[j] != 1 for j in axes):
        raise Refuse(f"squeeze axes {axes} of shape {t.shape}")
    _reshaped(r, node, t, tuple(d for j, d in enumerate(t.shape) if j not in axes))


def op_Unsqueeze(r, node, a) -> None:
    t = r.data(node)
    rank = len(t.shape) + len(_axes(r, node, a))
    axes = sorted(v % rank for v in _axes(r, node, a))
    if 0 in axes:
        raise Refuse("unsqueeze before the batch axis")
    rest = iter(t.shape)
    _reshaped(r, node, t, tuple(1 if j in axes else next(rest) for j in range(rank)))


def op_Concat(r, node, a) -> None:
    ts = [r.data(node, j) for j in range(len(node.input))]
    axis = a["axis"] % len(ts[0].shape)
    if axis == 0 or any(len(t.shape) != len(ts[0].shape) for t in ts):
        raise Refuse(f"concatenation along axis {axis} of tensors of ranks {[len(t.shape) for t in ts]}")
    perm = ts[0].perm
    ts = [r.to_perm(t, perm) if t.perm != perm else t for t in ts]
    out = r.emit("concat", [t.name for t in ts], node.output[0], {"axis": perm.index(axis)})
    shape = list(ts[0].shape)
    shape[axis] = sum(t.shape[axis] for t in ts)
    r.t[node.output[0]] = Tensor(out, tuple(shape), perm)


def op_Pad(r, node, a) -> None:
    t = r.data(node)
    rank = len(t.shape)
    if a.get("mode", "constant") != "constant":
        raise Refuse(f"pad mode {a.get('mode')}")
    pads = a.get("pads") if r.opset < 11 else r.const(node, 1)
    value = a.get("value", 0.0) if r.opset < 11 else r.const(node, 2, 0.0)
    axes = list(range(rank)) if len(node.input) < 4 or not node.input[3] else [v % rank for v in r.const(node, 3)]
    pads = [int(v) for v in np.ravel(pads)]
    per = dict.fromkeys(range(rank), (0, 0))
    per.update({ax: (pads[j], pads[j + len(axes)]) for j, ax in enumerate(axes)})
    if np.any(np.asarray(value) != 0) or rank < 3 or per[0] != (0, 0) or per[1] != (0, 0):
        raise Refuse("padding other than zeros on the spatial axes of an NC... tensor")
    if any(v < 0 for p in per.values() for v in p):
        raise Refuse("negative pads (cropping)")
    t = r.to_perm(t, canonical(rank))
    out = r.emit("pad", [t.name], node.output[0], {"pads": tuple(per[j] for j in range(2, rank))})
    r.t[node.output[0]] = Tensor(out, tuple(d + sum(per[j]) for j, d in enumerate(t.shape)), t.perm)


HANDLERS = {
    "Identity": op_Identity,
    "Dropout": op_Dropout,
    "Cast": op_Cast,
    "Relu": op_Relu,
    "Sigmoid": op_Sigmoid,
    "Tanh": op_Tanh,
    "Selu": op_Selu,
    "Softmax": op_Softmax,
    "Clip": op_Clip,
    "Neg": op_Neg,
    "Pow": op_Pow,
    "Add": op_Add,
    "Sub": op_Sub,
    "Mul": op_Mul,
    "Div": op_Div,
    "Max": op_Max,
    "MatMul": op_MatMul,
    "Gemm": op_Gemm,
    "Conv": op_Conv,
    "MaxPool": op_MaxPool,
    "AveragePool": op_AveragePool,
    "GlobalAveragePool": op_GlobalAveragePool,
    "GlobalMaxPool": op_GlobalMaxPool,
    "BatchNormalization": op_BatchNormalization,
    "Flatten": op_Flatten,
    "Reshape": op_Reshape,
    "Transpose": op_Transpose,
    "Squeeze": op_Squeeze,
    "Unsqueeze": op_Unsqueeze,
    "Concat": op_Concat,
    "Pad": op_Pad,
}
