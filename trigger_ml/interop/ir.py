"""The import representation: every front end (Keras 2/3, QKeras, HGQ v1, ONNX, QONNX) writes a
`Graph`; nothing after the front end reads the foreign file again.

A `Graph` is a list of `Node`s in topological order over named tensors, with exact semantics given
by `evaluate` (numpy, float64): for a graph whose every value lies on a fixed-point grid of at most
53 bits this *is* the model's arithmetic, bit for bit; ops marked float (`FLOAT_OPS`, or a
`dense`/`conv`/`scale_shift` whose operands are off any grid) compute as the source framework does
in float, which the precision policy (`interop.policy`) replaces by fixed point before lowering
(`interop.lower`) to hgq2 layers.

Conventions (every front end converts to them):
- shapes exclude the batch axis; images and sequences are channels-last (H, W, C) / (T, C), as
  Keras, hls4ml and hgq2 use them (an NCHW source gets a `transpose` of its input recorded in
  `Input.layout`, so the user's layout is kept at the interface);
- `dense` kernels are (in, out); `conv` kernels are (*window, in_channels, out_channels), with
  `groups` == in_channels for a depthwise convolution (out = in x multiplier);
- padding is explicit per spatial axis, `pads` = ((lo, hi), ...), zeros;
- a quantizer is a `Quant`: per-element (k, i, f) arrays (hgq2's convention: i excludes the sign
  bit) broadcast against the tensor, one rounding and one overflow mode (trigger_ml.fixed).

Ops (`OPS`; attributes and weights in each entry's docstring line):
    quant        attrs q                           y = q(x)
    dense        weights kernel, bias              y = x @ kernel + bias (last axis)
    conv         weights kernel, bias; attrs strides, pads, dilation, groups
    scale_shift  weights scale, shift (per channel) y = x * scale + shift (batch norm, folded)
    relu                                           y = max(x, 0)
    clip         attrs lo, hi                      y = min(max(x, lo), hi)
    sigmoid, tanh                                  float
    softmax      attrs axis (-1)                   float
    softmax_table attrs exp_in, exp_out, inv_in, inv_out (Fixed), stable: hls4ml's table softmax (exact)
    lut          attrs fn (sigmoid|tanh), q_in, q_out: a table over q_in's words (exact)
    maxpool, avgpool  attrs pool, strides, pads, count_pad (avg: divide by the window incl. pads)
    global_avgpool, global_maxpool                 over every spatial axis -> (C,)
    flatten                                        channels-last order
    reshape      attrs shape
    transpose    attrs perm (batch excluded)
    pad          attrs pads
    add, sub, mul, max  (two inputs, numpy broadcasting)
    concat       attrs axis (batch excluded, may be negative)
    bipolar      attrs scale                       y = scale if x >= 0 else -scale
    threshold    weights thresholds (C, T); attrs out_scale, out_bias: y = out_bias + out_scale * #(x >= t)
    identity
    selu         attrs alpha, gamma                 float: gamma * (x if x > 0 else alpha * (exp(x) - 1))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trigger_ml.errors import SchemaError, UnsupportedError
from trigger_ml.fixed import Fixed, quantize_kif

FLOAT_OPS = ("sigmoid", "tanh", "softmax", "selu")


@dataclass(frozen=True)
class Quant:
    """A fixed-point quantizer, per element: k, i, f broadcast against the tensor (batch excluded)."""

    k: np.ndarray
    i: np.ndarray
    f: np.ndarray
    rounding: str = "TRN"
    overflow: str = "WRAP"

    @classmethod
    def of(cls, fmt: Fixed) -> Quant:
        k, i, f = fmt.kif
        return cls(np.array(k), np.array(i), np.array(f), fmt.rounding, fmt.overflow)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return quantize_kif(x, self.k, self.i, self.f, self.rounding, self.overflow)

    def uniform(self) -> Fixed | None:
        """The one format when every element has the same (k, i, f), else None."""
        k, i, f = (np.unique(np.asarray(a)) for a in (self.k, self.i, self.f))
        if len(k) == len(i) == len(f) == 1 and int(k[0]) + int(i[0]) + int(f[0]) > 0:
            return Fixed(bool(k[0]), int(i[0]), int(f[0]), self.rounding, self.overflow)
        return None


@dataclass
class Node:
    op: str
    name: str
    inputs: list[str]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Input:
    name: str
    shape: tuple[int, ...]
    q: Quant | None = None  # the input's format; None: the source does not say (`--input-format`)
    layout: str = ""  # the user's layout when it is not channels-last, e.g. "NCHW" (documented, kept at the interface)


@dataclass
class Graph:
    name: str
    inputs: list[Input]
    nodes: list[Node]
    outputs: list[str]
    source: str = ""  # what the front end read (file kind and version), for messages and the run
    notes: list[str] = field(default_factory=list)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def producers(self) -> dict[str, Node]:
        return {n.output: n for n in self.nodes}

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def check(self) -> None:
        """Every op known, every input defined before use, names unique; one error lists every problem."""
        known = {i.name for i in self.inputs}
        problems = []
        for n in self.nodes:
            if n.op not in OPS:
                problems.append(f"node {n.name!r}: unknown op {n.op!r}")
            for t in n.inputs:
                if t not in known:
                    problems.append(f"node {n.name!r}: input {t!r} is not defined before it")
            if n.output in known:
                problems.append(f"node {n.name!r}: tensor {n.output!r} is written twice")
            known.add(n.output)
        problems += [f"output {o!r} is not produced" for o in self.outputs if o not in known]
        if problems:
            raise SchemaError("inconsistent import graph:\n  - " + "\n  - ".join(problems))

    def evaluate(self, *xs: np.ndarray, keep: bool = False) -> list[np.ndarray] | dict[str, np.ndarray]:
        """The graph's outputs for inputs `xs` (one array per graph input, batch first, channels-last
        shapes); with `keep`, every tensor by name. float64 throughout."""
        if len(xs) != len(self.inputs):
            raise ValueError(f"the graph takes {len(self.inputs)} inputs, got {len(xs)}")
        env: dict[str, np.ndarray] = {}
        for inp, x in zip(self.inputs, xs):
            x = np.asarray(x, np.float64)
            if x.shape[1:] != tuple(inp.shape):
                raise ValueError(f"input {inp.name!r} takes shape {inp.shape}, got {x.shape[1:]}")
            env[inp.name] = inp.q(x) if inp.q is not None else x
        for n in self.nodes:
            env[n.output] = OPS[n.op](n, *(env[t] for t in n.inputs))
        return env if keep else [env[o] for o in self.outputs]


# ----------------------------------------------------------------------------- op semantics


def _pool_windows(x: np.ndarray, pool: tuple[int, ...], strides: tuple[int, ...], pads, value: float) -> np.ndarray:
    """(batch, *out_spatial, C, *pool) windows of a channels-last x, padded with `value`."""
    nd = len(pool)
    pad_width = [(0, 0), *[tuple(p) for p in pads], (0, 0)]
    xp = np.pad(x, pad_width, constant_values=value)
    win = np.lib.stride_tricks.sliding_window_view(xp, pool, axis=tuple(range(1, nd + 1)))
    sl = (slice(None), *[slice(None, None, s) for s in strides])
    return win[sl]


def _conv(n: Node, x: np.ndarray) -> np.ndarray:
    k = n.weights["kernel"]  # (*window, cin/groups, cout)
    nd = k.ndim - 2
    strides = tuple(n.attrs.get("strides", (1,) * nd))
    dil = tuple(n.attrs.get("dilation", (1,) * nd))
    if any(d != 1 for d in dil):
        raise UnsupportedError(f"node {n.name!r}: dilated convolutions are not supported")
    pads = n.attrs.get("pads", ((0, 0),) * nd)
    groups = int(n.attrs.get("groups", 1))
    win = _pool_windows(x, k.shape[:nd], strides, pads, 0.0)  # (b, *out, cin, *window)
    cin = x.shape[-1]
    cout = k.shape[-1]
    axes = ([1 + nd + j for j in range(nd + 1)], list(range(nd + 1)))  # win's (cin, *window) x w's
    if groups == 1:
        y = np.tensordot(win, np.moveaxis(k, -2, 0), axes=axes)  # w: (cin, *window, cout)
    else:
        per_in, per_out = cin // groups, cout // groups
        parts = []
        for g in range(groups):
            wg = np.moveaxis(k[..., g * per_out : (g + 1) * per_out], -2, 0)  # (per_in, *window, per_out)
            xg = np.take(win, np.arange(g * per_in, (g + 1) * per_in), axis=1 + nd)
            parts.append(np.tensordot(xg, wg, axes=axes))
        y = np.concatenate(parts, axis=-1)
    b = n.weights.get("bias")
    return y + b if b is not None else y


def _pool(reduce: Callable) -> Callable:
    def op(n: Node, x: np.ndarray) -> np.ndarray:
        pool = tuple(n.attrs["pool"])
        nd = len(pool)
        strides = tuple(n.attrs.get("strides", pool))
        pads = n.attrs.get("pads", ((0, 0),) * nd)
        if reduce is np.max:
            win = _pool_windows(x, pool, strides, pads, -np.inf)
            return win.max(axis=tuple(range(-nd, 0)))
        win = _pool_windows(x, pool, strides, pads, np.nan)
        axes = tuple(range(-nd, 0))
        if n.attrs.get("count_pad", False):
            return np.nansum(win, axis=axes) / float(np.prod(pool))
        return np.nansum(win, axis=axes) / np.sum(~np.isnan(win), axis=axes)

    return op


def _softmax(n: Node, x: np.ndarray) -> np.ndarray:
    axis = int(n.attrs.get("axis", -1))
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _lut(n: Node, x: np.ndarray) -> np.ndarray:
    q_in, q_out = n.attrs["q_in"], n.attrs["q_out"]
    fn = {"sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)), "tanh": np.tanh}[n.attrs["fn"]]
    return q_out(fn(q_in(x)))


def softmax_table(
    x: np.ndarray, exp_in: Fixed, exp_out: Fixed, inv_in: Fixed, inv_out: Fixed, axis: int = -1
) -> np.ndarray:
    """hls4ml's stable table softmax as hgq2's QSoftmax describes it (exact: exp(-d) on the words of
    exp_in rounded to exp_out, the sum onto inv_in, 1 / s on its words rounded to inv_out, product)."""
    d = exp_in.quantize(x.max(axis=axis, keepdims=True) - x)
    e = exp_out.quantize(np.exp(-d))
    s = inv_in.quantize(e.sum(axis=axis, keepdims=True))
    with np.errstate(divide="ignore"):
        inv = inv_out.quantize(np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), np.inf))
    return e * inv


def _threshold(n: Node, x: np.ndarray) -> np.ndarray:
    t = n.weights["thresholds"]  # (C, T), channels-last
    count = (x[..., None] >= t).sum(axis=-1)
    return n.attrs.get("out_bias", 0.0) + n.attrs.get("out_scale", 1.0) * count


def _reshape(n: Node, x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), *n.attrs["shape"])


def _transpose(n: Node, x: np.ndarray) -> np.ndarray:
    return np.transpose(x, (0, *[p + 1 for p in n.attrs["perm"]]))


def _pad(n: Node, x: np.ndarray) -> np.ndarray:
    return np.pad(x, [(0, 0), *[tuple(p) for p in n.attrs["pads"]], (0, 0)])


def _concat(n: Node, *xs: np.ndarray) -> np.ndarray:
    axis = int(n.attrs.get("axis", -1))
    return np.concatenate(xs, axis=axis if axis < 0 else axis + 1)


OPS: dict[str, Callable[..., np.ndarray]] = {
    "quant": lambda n, x: n.attrs["q"](x),
    "dense": lambda n, x: x @ n.weights["kernel"] + n.weights.get("bias", 0.0),
    "conv": _conv,
    "scale_shift": lambda n, x: x * n.weights["scale"] + n.weights["shift"],
    "relu": lambda n, x: np.maximum(x, 0.0),
    "clip": lambda n, x: np.clip(x, n.attrs["lo"], n.attrs["hi"]),
    "sigmoid": lambda n, x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": lambda n, x: np.tanh(x),
    "softmax": _softmax,
    "softmax_table": lambda n, x: softmax_table(
        x, n.attrs["exp_in"], n.attrs["exp_out"], n.attrs["inv_in"], n.attrs["inv_out"], int(n.attrs.get("axis", -1))
    ),
    "lut": _lut,
    "maxpool": _pool(np.max),
    "avgpool": _pool(np.mean),
    "global_avgpool": lambda n, x: x.mean(axis=tuple(range(1, x.ndim - 1))),
    "global_maxpool": lambda n, x: x.max(axis=tuple(range(1, x.ndim - 1))),
    "flatten": lambda n, x: x.reshape(len(x), -1),
    "reshape": _reshape,
    "transpose": _transpose,
    "pad": _pad,
    "add": lambda n, a, b: a + b,
    "sub": lambda n, a, b: a - b,
    "mul": lambda n, a, b: a * b,
    "max": lambda n, a, b: np.maximum(a, b),
    "concat": _concat,
    "bipolar": lambda n, x: np.where(x >= 0, n.attrs["scale"], -n.attrs["scale"]),
    "threshold": _threshold,
    "identity": lambda n, x: x,
    "selu": lambda n, x: n.attrs["gamma"] * np.where(x > 0, x, n.attrs["alpha"] * np.expm1(np.minimum(x, 0.0))),
}


class GraphLevel:
    """A graph's `evaluate` as a verify level: `predict(x)` -> outputs flattened, one row per event."""

    def __init__(self, graph: Graph, name: str = "import") -> None:
        self.graph, self.name = graph, name

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        ys = self.graph.evaluate(x.reshape(len(x), *self.graph.inputs[0].shape))
        return np.concatenate([y.reshape(len(x), -1) for y in ys], axis=1)
