"""What is known about every tensor of an import graph (`ir.Graph`) before running it: its shape,
its interval bounds and its grid.

- `shapes(graph)`: per tensor, the shape without the batch axis (by evaluating one zero event:
  the shapes `evaluate` produces are the truth by definition).
- `bounds(graph, input_formats)`: per tensor, element-wise (lo, hi) arrays that every value lies
  in, for inputs anywhere in their formats (interval arithmetic: a dense/conv takes the positive
  and negative weights from opposite ends; monotone ops map the ends; a quantizer that may
  overflow a WRAP format gives the format's whole range).
- `grids(graph, input_formats)`: per tensor, the number of fraction bits f such that every value
  is a multiple of 2**-f, or None when the values are not on any power-of-two grid (a float op,
  an average over a window that is not a power of two, weights off a grid).

`input_formats` maps an input name to a `Quant` (its format); an input without one takes its own
`Input.q`. These are the facts the precision policy and the lowering choose formats from.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from trigger_ml.errors import SchemaError
from trigger_ml.fixed import smallest_holding
from trigger_ml.interop.ir import OPS, Graph, Node, Quant

MAX_FRAC = 40  # a weight needing more fraction bits is treated as off any grid

# ops that map (lo, hi) to (op(lo), op(hi)) element-wise: non-decreasing in every input
MONOTONE = {
    "relu",
    "clip",
    "sigmoid",
    "tanh",
    "selu",
    "maxpool",
    "avgpool",
    "global_avgpool",
    "global_maxpool",
    "flatten",
    "reshape",
    "transpose",
    "pad",
    "add",
    "max",
    "concat",
    "identity",
    "bipolar",
}
# ops whose output grid is their (first) input's grid
SAME_GRID = {"relu", "maxpool", "global_maxpool", "flatten", "reshape", "transpose", "pad", "identity"}


def shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape (batch excluded)."""
    env = graph.evaluate(*[np.zeros((1, *i.shape)) for i in graph.inputs], keep=True)
    return {k: tuple(v.shape[1:]) for k, v in env.items()}


def quant_range(q: Quant, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The element-wise range of a quantizer's format."""
    k, i, f = (np.broadcast_to(np.asarray(a, np.float64), shape) for a in (q.k, q.i, q.f))
    lsb = np.ldexp(1.0, -f.astype(np.int64))
    hi = np.ldexp(1.0, i.astype(np.int64)) - lsb
    lo = np.where(k > 0, -np.ldexp(1.0, i.astype(np.int64)), 0.0)
    if q.overflow == "SAT_SYM":
        lo = np.where(k > 0, lo + lsb, lo)
    width = k + i + f
    return np.where(width > 0, lo, 0.0), np.where(width > 0, hi, 0.0)


def quant_bounds(q: Quant, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounds after q of values in [lo, hi], and where q can overflow (clip or wrap) them."""
    r_lo, r_hi = quant_range(q, lo.shape)
    ql, qh = q(lo), q(hi)
    over = (quantize_unbounded(q, lo) < r_lo) | (quantize_unbounded(q, hi) > r_hi)
    if q.overflow in ("WRAP", "SAT_ZERO"):
        ql, qh = np.where(over, np.minimum(r_lo, 0.0), ql), np.where(over, r_hi, qh)
    return ql, qh, over


def quantize_unbounded(q: Quant, x: np.ndarray) -> np.ndarray:
    """x rounded onto q's grid with no overflow handling (q with integer bits to spare)."""
    return Quant(np.ones_like(np.asarray(q.k)), np.asarray(q.i) + 64, q.f, q.rounding, "SAT")(x)


def _weights_split(n: Node) -> tuple[Node, Node]:
    """The node with only its positive, and with only its negative weights (bias in the first)."""
    key = "kernel" if "kernel" in n.weights else "scale"
    w = n.weights[key]
    pos = {**n.weights, key: np.maximum(w, 0.0)}
    neg = {key: np.minimum(w, 0.0)}
    if "bias" in n.weights:
        neg["bias"] = np.zeros_like(n.weights["bias"])
    if "shift" in n.weights:
        neg["shift"] = np.zeros_like(n.weights["shift"])
    return replace(n, weights=pos), replace(n, weights=neg)


def _node_bounds(n: Node, ins: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    op = OPS[n.op]
    if n.op == "quant":
        lo, hi, _ = quant_bounds(n.attrs["q"], *ins[0])
        return lo, hi
    if n.op in ("dense", "conv", "scale_shift"):
        (lo, hi), (p, m) = ins[0], _weights_split(n)
        return (op(p, lo[None]) + op(m, hi[None]))[0], (op(p, hi[None]) + op(m, lo[None]))[0]
    if n.op in MONOTONE:
        a = op(n, *[lo[None] for lo, _ in ins])[0]
        b = op(n, *[hi[None] for _, hi in ins])[0]
        return np.minimum(a, b), np.maximum(a, b)
    if n.op == "sub":
        (al, ah), (bl, bh) = ins
        return op(n, al[None], bh[None])[0], op(n, ah[None], bl[None])[0]
    if n.op == "mul":
        (al, ah), (bl, bh) = ins
        c = np.stack([op(n, a[None], b[None])[0] for a in (al, ah) for b in (bl, bh)])
        return c.min(0), c.max(0)
    if n.op == "threshold":
        a, b = op(n, ins[0][0][None])[0], op(n, ins[0][1][None])[0]
        return np.minimum(a, b), np.maximum(a, b)
    if n.op == "softmax":
        lo = ins[0][0]
        return np.zeros_like(lo), np.ones_like(lo)
    if n.op == "softmax_table":
        lo = ins[0][0]
        top = n.attrs["exp_out"].max_value * n.attrs["inv_out"].max_value
        return np.zeros_like(lo), np.full_like(lo, top)
    if n.op == "lut":
        q_in = n.attrs["q_in"]
        lo, hi, _ = quant_bounds(q_in, *ins[0])
        a, b = OPS["lut"](n, lo[None])[0], OPS["lut"](n, hi[None])[0]  # sigmoid, tanh, selu: increasing
        return np.minimum(a, b), np.maximum(a, b)
    raise SchemaError(f"node {n.name!r}: no bounds rule for op {n.op!r}", "add one to interop.analysis")


def bounds(graph: Graph, input_formats: dict[str, Quant] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Element-wise (lo, hi) of every tensor for inputs anywhere in their formats."""
    input_formats = input_formats or {}
    env: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for inp in graph.inputs:
        q = input_formats.get(inp.name, inp.q)
        if q is None:
            raise SchemaError(f"input {inp.name!r} has no format", "give it one (the policy's --input-format)")
        env[inp.name] = quant_range(q, tuple(inp.shape))
    for n in graph.nodes:
        env[n.output] = _node_bounds(n, [env[t] for t in n.inputs])
    return env


def frac_of(values: np.ndarray | float) -> int | None:
    """Fraction bits of the coarsest power-of-two grid holding every value (None: none within MAX_FRAC)."""
    fmt = smallest_holding(np.asarray(values, np.float64), max_frac=MAX_FRAC)
    return None if fmt is None else fmt.frac


def _max_f(q: Quant) -> int:
    return int(np.max(np.asarray(q.f)))


def pool_counts(n: Node, shape: tuple[int, ...]) -> np.ndarray:
    """How many real (not padded) elements each average-pool window holds."""
    one = np.ones((1, *shape))
    probe = replace(n, attrs={**n.attrs, "count_pad": True})
    return np.rint(OPS["avgpool"](probe, one)[0] * float(np.prod(n.attrs["pool"])))


def _is_pow2(v: np.ndarray) -> bool:
    v = np.asarray(v, np.float64)
    return bool(np.all((v > 0) & (np.frexp(v)[0] == 0.5)))


def grids(graph: Graph, input_formats: dict[str, Quant] | None = None) -> dict[str, int | None]:
    """Fraction bits of every tensor's grid (None: off any power-of-two grid)."""
    input_formats = input_formats or {}
    shp = shapes(graph)
    g: dict[str, int | None] = {}
    for inp in graph.inputs:
        q = input_formats.get(inp.name, inp.q)
        g[inp.name] = None if q is None else _max_f(q)
    for n in graph.nodes:
        x = [g[t] for t in n.inputs]
        g[n.output] = _node_grid(n, x, shp[n.inputs[0]] if n.inputs else ())
    return g


def _plus(*fs: int | None) -> int | None:
    return None if any(f is None for f in fs) else int(sum(fs))  # type: ignore[arg-type]


def _max(*fs: int | None) -> int | None:
    return None if any(f is None for f in fs) else int(max(fs))  # type: ignore[type-var]


def _node_grid(n: Node, x: list[int | None], in_shape: tuple[int, ...]) -> int | None:
    op = n.op
    if op == "quant":
        return _max_f(n.attrs["q"])
    if op in SAME_GRID:
        return x[0]
    if op in ("dense", "conv"):
        b = n.weights.get("bias")
        return _max(_plus(x[0], frac_of(n.weights["kernel"])), 0 if b is None else frac_of(b))
    if op == "scale_shift":
        return _max(_plus(x[0], frac_of(n.weights["scale"])), frac_of(n.weights["shift"]))
    if op == "clip":
        return _max(x[0], frac_of(n.attrs["lo"]), frac_of(n.attrs["hi"]))
    if op in ("add", "sub", "max", "concat"):
        return _max(*x)
    if op == "mul":
        return _plus(*x)
    if op == "avgpool":
        counts = pool_counts(n, in_shape) if not n.attrs.get("count_pad") else np.prod(n.attrs["pool"])
        return _plus(x[0], int(np.log2(np.max(counts)))) if _is_pow2(counts) else None
    if op == "global_avgpool":
        count = int(np.prod(in_shape[:-1]))
        return _plus(x[0], int(np.log2(count))) if _is_pow2(count) else None
    if op == "softmax_table":
        return n.attrs["exp_out"].frac + n.attrs["inv_out"].frac
    if op == "lut":
        return _max_f(n.attrs["q_out"])
    if op == "bipolar":
        return frac_of(n.attrs["scale"])
    if op == "threshold":
        return _max(frac_of(n.attrs.get("out_scale", 1.0)), frac_of(n.attrs.get("out_bias", 0.0)))
    return None  # sigmoid, tanh, selu, softmax: float
