"""Each tensor's grid and range in a graph (interval bounds from the input formats).

`spans(inputs, nodes)` -> {tensor: Span(f, lo, hi)}: every value of the tensor is a multiple of
2**-f (f None: no known grid, e.g. after a float op or an input without a format) and lies in
[lo, hi] (infinite when the input has no format). Bounds are per tensor (the extremes over its
elements), so they are sound and may be loose; `onnx_exact` uses them to decide where a float
chain before a quantizer can be swept over every reachable input, and to size wide quantizers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trigger_ml.fixed import smallest_holding
from trigger_ml.interop import ir

GRID_FRAC = 48


@dataclass(frozen=True)
class Span:
    f: int | None  # values on the grid 2**-f (None: not on a known grid)
    lo: float
    hi: float

    def count(self) -> float:
        if self.f is None or not np.isfinite(self.lo) or not np.isfinite(self.hi):
            return np.inf
        return (self.hi - self.lo) * 2.0**self.f + 1


def grid_of(v: Any) -> int | None:
    fmt = smallest_holding(np.asarray(v, np.float64), max_frac=GRID_FRAC)
    return None if fmt is None else fmt.frac


def _add(*fs: int | None) -> int | None:
    return None if any(f is None for f in fs) else int(sum(fs))


def _max(*fs: int | None) -> int | None:
    return None if any(f is None for f in fs) else int(max(fs))


def _affine(k: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of sum_i k_i x_i over x_i in [lo, hi], per output (k: (n_in, n_out))."""
    with np.errstate(invalid="ignore"):
        a = np.where(k == 0, 0.0, k * lo)
        b = np.where(k == 0, 0.0, k * hi)
    return np.minimum(a, b).sum(0), np.maximum(a, b).sum(0)


def _quant_span(q: ir.Quant, s: Span) -> Span:
    k, i, f = (np.asarray(a) for a in (q.k, q.i, q.f))
    lo_q = float(np.min(np.where(k > 0, -(2.0**i) + (2.0**-f if q.overflow == "SAT_SYM" else 0), 0.0)))
    hi_q = float(np.max(2.0**i - 2.0**-f))
    if q.overflow.startswith("SAT") or (s.lo >= lo_q and s.hi <= hi_q):
        lo_q, hi_q = float(np.min(q(np.array([max(s.lo, lo_q)])))), float(np.max(q(np.array([min(s.hi, hi_q)]))))
    return Span(int(np.max(f)), lo_q, hi_q)


def spans(inputs: list[ir.Input], nodes: list[ir.Node]) -> dict[str, Span]:
    out: dict[str, Span] = {}
    for inp in inputs:
        out[inp.name] = (
            Span(None, -np.inf, np.inf) if inp.q is None else _quant_span(inp.q, Span(None, -np.inf, np.inf))
        )
    for n in nodes:
        ins = [out[i] for i in n.inputs]
        out[n.output] = _span(n, ins)
    return out


def _span(n: ir.Node, ins: list[Span]) -> Span:
    s = ins[0] if ins else Span(None, -np.inf, np.inf)
    op, w = n.op, n.weights
    if op == "quant":
        return _quant_span(n.attrs["q"], s)
    if op in ("dense", "conv"):
        k = w["kernel"].reshape(-1, w["kernel"].shape[-1])
        b = np.asarray(w.get("bias", 0.0), np.float64)
        lo, hi = (s.lo, s.hi) if op == "dense" else (min(s.lo, 0.0), max(s.hi, 0.0))
        a, c = _affine(k, lo, hi)
        f = _max(_add(s.f, grid_of(k)), grid_of(b))
        return Span(f, float(np.min(a + b)), float(np.max(c + b)))
    if op == "scale_shift":
        sc, sh = np.asarray(w["scale"], np.float64), np.asarray(w["shift"], np.float64)
        with np.errstate(invalid="ignore"):
            ends = np.stack(np.broadcast_arrays(s.lo * sc + sh, s.hi * sc + sh))
        ends = np.where(np.isnan(ends), sh, ends)
        return Span(_max(_add(s.f, grid_of(sc)), grid_of(sh)), float(ends.min()), float(ends.max()))
    if op == "relu":
        return Span(s.f, max(s.lo, 0.0), max(s.hi, 0.0))
    if op == "clip":
        lo, hi = float(np.min(n.attrs["lo"])), float(np.max(n.attrs["hi"]))
        f = (
            s.f
            if all(np.isinf(v) or grid_of(v) is not None and s.f is not None and grid_of(v) <= s.f for v in (lo, hi))
            else None
        )
        return Span(f, min(max(s.lo, lo), hi), max(min(s.hi, hi), lo))
    if op in ("maxpool", "global_maxpool", "flatten", "reshape", "transpose", "identity"):
        return s
    if op == "pad":
        return Span(s.f, min(s.lo, 0.0), max(s.hi, 0.0))
    if op in ("avgpool", "global_avgpool"):
        return Span(None, s.lo, s.hi)
    if op in ("add", "sub", "max", "concat"):
        a, b = ins[0], ins[-1]
        f = _max(*(x.f for x in ins))
        if op == "add":
            return Span(f, a.lo + b.lo, a.hi + b.hi)
        if op == "sub":
            return Span(f, a.lo - b.hi, a.hi - b.lo)
        return Span(f, min(x.lo for x in ins) if op == "concat" else max(a.lo, b.lo), max(x.hi for x in ins))
    if op == "mul":
        a, b = ins
        ends = [x * y for x in (a.lo, a.hi) for y in (b.lo, b.hi) if np.isfinite(x * y)]
        full = len(ends) == 4
        return Span(_add(a.f, b.f), min(ends) if full else -np.inf, max(ends) if full else np.inf)
    if op == "bipolar":
        sc = np.asarray(n.attrs["scale"], np.float64)
        return Span(grid_of(sc), float(-sc.max()), float(sc.max()))
    if op == "threshold":
        t = w["thresholds"].shape[-1]
        sc, b = (
            np.asarray(n.attrs.get("out_scale", 1.0), np.float64),
            np.asarray(n.attrs.get("out_bias", 0.0), np.float64),
        )
        ends = np.stack(np.broadcast_arrays(b, b + sc * t))
        return Span(_max(grid_of(sc), grid_of(b)), float(ends.min()), float(ends.max()))
    bounds = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "softmax": (0.0, 1.0), "softmax_table": (0.0, 1.0)}
    lo, hi = bounds.get(op, (-np.inf, np.inf))
    return Span(None, lo, hi)
