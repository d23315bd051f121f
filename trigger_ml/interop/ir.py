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
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.errors import SchemaError, UnsupportedError
from trigger_ml.fixed import Fixed, quantize_kif

FLOAT_OPS = ("sigmoid", "tanh", "softmax", "selu")
SOFTMAX_EPS = 1e-7  # hgq2 QSoftmax: 1 / (s + keras.backend.epsilon())


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


# Keras' selu constants (keras.activations.selu, hgq2's QUnaryFunctionLUT("selu")); ONNX's Selu
# defaults are these rounded to float32
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
SELU_SCALE_ALPHA = 1.7580993408473768599402175208123  # TensorFlow's Selu kernel: scale_alpha * (exp(x) - 1)

# the float functions a `lut` tabulates, in float64 (the names are Keras activations)
LUT_FUNCTIONS = {
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
    "tanh": np.tanh,
    "selu": lambda v: np.where(v > 0, SELU_SCALE * v, SELU_SCALE_ALPHA * (np.exp(np.minimum(v, 0.0)) - 1.0)),
}


def _lut(n: Node, x: np.ndarray) -> np.ndarray:
    q_in, q_out = n.attrs["q_in"], n.attrs["q_out"]
    return q_out(LUT_FUNCTIONS[n.attrs["fn"]](q_in(x)))


def softmax_table(
    x: np.ndarray, exp_in: Fixed, exp_out: Fixed, inv_in: Fixed, inv_out: Fixed, axis: int = -1
) -> np.ndarray:
    """hls4ml's stable table softmax as hgq2's QSoftmax describes it (exact: exp(-d) on the words of
    exp_in rounded to exp_out, the sum onto inv_in, 1 / (s + 1e-7) on its words rounded to inv_out,
    product). The 1e-7 is hgq2's (keras' epsilon); hls4ml's table holds 1 / s: the policy chooses
    formats where both round alike on every word (`policy`)."""
    d = exp_in.quantize(x.max(axis=axis, keepdims=True) - x)
    e = exp_out.quantize(np.exp(-d))
    s = inv_in.quantize(e.sum(axis=axis, keepdims=True))
    inv = inv_out.quantize(1.0 / (s + SOFTMAX_EPS))
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


# ----------------------------------------------------------------------------- save and load

GRAPH_JSON = "graph.json"
ARRAYS_NPZ = "arrays.npz"
FORMAT_VERSION = 1


def _encode(value: Any, key: str, arrays: dict[str, np.ndarray]) -> Any:
    """An attribute as JSON: arrays go to the npz under `key`, Quant and Fixed are tagged objects."""
    if isinstance(value, Quant):
        for part in ("k", "i", "f"):
            arrays[f"{key}.{part}"] = np.asarray(getattr(value, part))
        return {"$quant": key, "rounding": value.rounding, "overflow": value.overflow}
    if isinstance(value, Fixed):
        return {"$fixed": str(value.with_modes("TRN", "WRAP")), "rounding": value.rounding, "overflow": value.overflow}
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"$array": key}
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{key}.{j}", arrays) for j, v in enumerate(value)]
    if isinstance(value, dict):
        return {"$dict": {str(k): _encode(v, f"{key}.{k}", arrays) for k, v in value.items()}}
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise SchemaError(f"cannot save attribute {key!r} of type {type(value).__name__}", "use numbers, strings, arrays")


def _decode(value: Any, arrays: Any) -> Any:
    if isinstance(value, list):
        return tuple(_decode(v, arrays) for v in value)
    if isinstance(value, dict):
        if "$quant" in value:
            key = value["$quant"]
            k, i, f = (np.asarray(arrays[f"{key}.{p}"]) for p in ("k", "i", "f"))
            return Quant(k, i, f, value["rounding"], value["overflow"])
        if "$fixed" in value:
            return Fixed.parse(value["$fixed"]).with_modes(value["rounding"], value["overflow"])
        if "$array" in value:
            return np.asarray(arrays[value["$array"]])
        if "$dict" in value:
            return {k: _decode(v, arrays) for k, v in value["$dict"].items()}
    return value


def save(graph: Graph, folder: str | Path) -> Path:
    """Write `graph` to `folder` as graph.json (structure) and arrays.npz (weights, per-element
    formats); no pickle. Returns the folder."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    doc = {
        "format_version": FORMAT_VERSION,
        "name": graph.name,
        "source": graph.source,
        "notes": list(graph.notes),
        "inputs": [
            {
                "name": i.name,
                "shape": list(i.shape),
                "layout": i.layout,
                "q": None if i.q is None else _encode(i.q, f"input.{j}.q", arrays),
            }
            for j, i in enumerate(graph.inputs)
        ],
        "nodes": [],
        "outputs": list(graph.outputs),
    }
    for j, n in enumerate(graph.nodes):
        for w, v in n.weights.items():
            arrays[f"node.{j}.w.{w}"] = np.asarray(v, np.float64)
        doc["nodes"].append(
            {
                "op": n.op,
                "name": n.name,
                "inputs": list(n.inputs),
                "output": n.output,
                "attrs": {k: _encode(v, f"node.{j}.a.{k}", arrays) for k, v in n.attrs.items()},
                "weights": sorted(n.weights),
            }
        )
    (folder / GRAPH_JSON).write_text(json.dumps(doc, indent=1))
    with open(folder / ARRAYS_NPZ, "wb") as fh:
        np.savez(fh, **arrays)
    return folder


def load(folder: str | Path) -> Graph:
    """The graph saved by `save` in `folder` (np.load with allow_pickle=False); checked."""
    import json

    folder = Path(folder)
    try:
        doc = json.loads((folder / GRAPH_JSON).read_text())
        arrays = dict(np.load(folder / ARRAYS_NPZ, allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise SchemaError(
            f"{folder}: not a saved import graph ({exc})", "save it with trigger_ml.interop.ir.save"
        ) from exc
    if doc.get("format_version") != FORMAT_VERSION:
        raise SchemaError(f"{folder}: graph format {doc.get('format_version')!r}", "import the model again")
    inputs = [
        Input(i["name"], tuple(i["shape"]), None if i["q"] is None else _decode(i["q"], arrays), i.get("layout", ""))
        for i in doc["inputs"]
    ]
    nodes = [
        Node(
            n["op"],
            n["name"],
            list(n["inputs"]),
            n["output"],
            {k: _decode(v, arrays) for k, v in n["attrs"].items()},
            {w: arrays[f"node.{j}.w.{w}"] for w in n["weights"]},
        )
        for j, n in enumerate(doc["nodes"])
    ]
    g = Graph(doc["name"], inputs, nodes, list(doc["outputs"]), doc.get("source", ""), list(doc.get("notes", [])))
    g.check()
    return g


# ----------------------------------------------------------------------------- the user's layout


def layout_perm(layout: str, ndim: int) -> tuple[int, ...] | None:
    """The permutation (batch excluded) taking an array in the user's `layout` (e.g. "NCHW", "NCW")
    to channels-last, or None when the layout is channels-last already or not given."""
    if not layout or len(layout) != ndim + 1 or layout[-1] == "C" or "C" not in layout:
        return None
    body = layout[1:]  # batch first in every layout
    c = body.index("C")
    return tuple([j for j in range(len(body)) if j != c] + [c])


def to_channels_last(x: np.ndarray, inp: Input) -> np.ndarray:
    """x in the user's layout (or already channels-last, or flat) as the graph's input shape."""
    x = np.asarray(x)
    perm = layout_perm(inp.layout, len(inp.shape))
    if perm is not None and x.ndim == len(inp.shape) + 1:
        user = tuple(inp.shape[perm.index(j)] for j in range(len(perm)))  # the user's shape
        if x.shape[1:] == user:
            x = np.transpose(x, (0, *[p + 1 for p in perm]))
    return x.reshape(len(x), *inp.shape)
