"""Passes over a freshly read graph that make it exact where the file is exact, and say where not.

`finish(reader)` runs, in order:
1. `fold_transposes` (transpose -> flatten -> dense: the kernel's rows permuted instead; a reshape
   before a flatten dropped), then `push_scales`: a Quant with a scale s that is not a power of two is a `threshold` whose output
   is q s (q integer codes). When a dense or conv reads it (through layout ops, max pooling, relu
   or zero padding), s moves past that dense/conv: the threshold gives the codes q, the dense reads
   integers (kernel unchanged, bias moved out) and a `scale_shift` (s, bias) follows it, merged with
   the scale_shift of a weight scale (`onnx_quant.weight_codes`). A per-channel s has no single
   place after the dense: it is folded into the kernel rows instead, and the dense is marked
   `attrs['folded_scale']` (exact in float64 while its products keep within 53 bits; the kernel is
   off any narrow grid, which the precision policy must know). In exact arithmetic both are the
   file's own values; qonnx's executor computes them in float32 (counted, not copied).
2. `fold_bias`: a constant Add after a dense/conv becomes its bias (the same float64 sum) unless
   the dense is exact on a grid the constant is not on.
3. `onnx_spans.spans`: each tensor's grid 2**-f and range [lo, hi] from the input formats.
4. `fuse`: a chain of per-channel monotone float ops (batch normalization, float scaling, Div,
   relu, clip, sigmoid, tanh, selu) ending in a quantizer (`quant` with SAT, `threshold`,
   `bipolar`), whose input is on a grid with at most `MAX_SWEEP` reachable values, becomes one
   `threshold` on that input: for each element, the smallest reachable input whose quantized
   output reaches each level. The levels come from qonnx's executor itself, run on the file's own
   nodes over every reachable input (so the threshold *is* the executor's function there), when
   the chain is the file's own chain of nodes on a tensor the executor holds exactly; else from
   float64 arithmetic. Both are computed when both exist; the elements where they disagree are the
   cases where float32 rounding inside qonnx's executor decides (`facts[...]["float32_decided"]`).
   `float64_margin` e certifies the float64 levels as exact: no reachable value before the
   quantizer is within e (relative) of a level change, and float64 errs by ~1e-15 (0: uncertified).
5. wide quantizers get the integer bits of their range; a threshold on a grid gets thresholds on
   the grid (rounded up: the same count for every grid value); an input read only by one `quant`
   gets it as `Input.q`; nodes nobody reads are dropped.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from trigger_ml.fixed import needed_integer
from trigger_ml.interop import ir
from trigger_ml.interop.onnx_load import all_pow2
from trigger_ml.interop.onnx_spans import Span, grid_of, spans

log = logging.getLogger(__name__)
MAX_SWEEP = 1 << 16  # reachable input values of one fused threshold
MAX_SWEEP_ELEMENTS = 1 << 22  # values x elements per executor run
THROUGH = ("flatten", "reshape", "transpose", "maxpool", "relu", "pad", "identity", "global_maxpool")
MONO = ("scale_shift", "relu", "clip", "sigmoid", "tanh", "selu")


def finish(r) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    fold_transposes(r)
    push_scales(r)
    fold_bias(r, spans(r.inputs, r.nodes))
    sp = spans(r.inputs, r.nodes)
    fuse(r, sp, facts)
    sp = spans(r.inputs, r.nodes)
    tighten(r, sp, facts)
    input_quant(r)
    prune(r)
    return facts


# ----------------------------------------------------------------------------- graph helpers


def _consumers(r, name: str) -> list[ir.Node]:
    return [n for n in r.nodes if name in n.inputs]


def _single(r, name: str) -> ir.Node | None:
    c = _consumers(r, name)
    return c[0] if len(c) == 1 and name not in r.outputs else None


def _append_after(r, node: ir.Node, op: str, attrs: dict, weights: dict) -> ir.Node:
    """A new node reading node's output; node's readers (and the graph outputs) read the new one."""
    names = {n.output for n in r.nodes} | {i.name for i in r.inputs}
    k, name = 1, f"{node.output}__1"
    while name in names:
        k, name = k + 1, f"{node.output}__{k + 1}"
    new = ir.Node(op, name, [node.output], name, attrs, {a: np.asarray(v) for a, v in weights.items()})
    for n in r.nodes:
        n.inputs = [name if i == node.output else i for i in n.inputs]
    r.outputs = [name if o == node.output else o for o in r.outputs]
    r.nodes.insert(r.nodes.index(node) + 1, new)
    r.vals[name] = ir.OPS[op](new, r.vals[node.output])
    return new


# ----------------------------------------------------------------------------- 1. scales


def push_scales(r) -> None:
    for th in [n for n in r.nodes if n.op == "threshold" and "scale" in n.attrs]:
        s = np.asarray(th.attrs["scale"], np.float64)
        cur, path = th, []
        while (nxt := _single(r, cur.output)) is not None and nxt.op in THROUGH:
            path.append(nxt)
            cur = nxt
        nxt = _single(r, cur.output)
        if nxt is None or nxt.op not in ("dense", "conv"):
            continue
        lo = th.attrs["codes"][0]
        if s.size == 1:
            th.attrs.update(out_scale=1.0, out_bias=float(lo))
            bias = nxt.weights.pop("bias", None)
            after = _single(r, nxt.output)
            if after is not None and after.op == "scale_shift" and "weight_scale" in after.attrs:
                if bias is not None:  # (s (x @ W) + b) sw + c = (x @ W) (s sw) + (b sw + c)
                    after.weights["shift"] = after.weights["shift"] + bias * after.weights["scale"]
                after.weights["scale"] = after.weights["scale"] * s
                after.attrs["activation_scale"] = s
            else:
                shift = np.zeros(nxt.weights["kernel"].shape[-1]) if bias is None else bias
                _append_after(r, nxt, "scale_shift", {"activation_scale": s}, {"scale": s.reshape(()), "shift": shift})
        elif not path or (len(path) == 1 and path[0].op == "flatten" and nxt.op == "dense"):
            shape = r.vals[th.inputs[0]].shape[1:]
            rows = np.broadcast_to(s, shape).reshape(-1) if path else s
            k = nxt.weights["kernel"]
            if nxt.op == "dense":
                nxt.weights["kernel"] = k * np.broadcast_to(rows, k.shape[:1])[:, None]
            elif s.ndim <= 1:  # per input channel
                nxt.weights["kernel"] = k * np.broadcast_to(s, k.shape[-2:-1])[:, None]
            else:
                continue
            th.attrs.update(out_scale=1.0, out_bias=float(lo))
            nxt.attrs["folded_scale"] = s
        else:
            continue
        th.attrs["pushed_scale"] = True


# ----------------------------------------------------------------------------- 2. local folds


def fold_bias(r, sp: dict[str, Span]) -> None:
    """A constant added after a dense/conv without bias becomes its bias, unless the dense's output
    is on a grid the constant is not on (an exact accumulator stays apart from a float offset)."""
    for d in [n for n in r.nodes if n.op in ("dense", "conv") and "bias" not in n.weights]:
        a = _single(r, d.output)
        cout = d.weights["kernel"].shape[-1]
        if a is None or a.op != "scale_shift" or np.any(a.weights["scale"] != 1) or a.attrs:
            continue
        shift = np.asarray(a.weights["shift"], np.float64)
        f_out, f_shift = sp[d.output].f, grid_of(shift)
        if shift.ndim > 1 or shift.size not in (1, cout) or f_out is not None and (f_shift is None or f_shift > f_out):
            continue
        d.weights["bias"] = np.broadcast_to(shift, (cout,)).copy()
        _bypass(r, a)


def _bypass(r, node: ir.Node) -> None:
    """Remove a node whose output its input replaces (readers and graph outputs renamed)."""
    src = node.inputs[0]
    r.nodes.remove(node)
    for n in r.nodes:
        n.inputs = [src if i == node.output else i for i in n.inputs]
    r.outputs = [src if o == node.output else o for o in r.outputs]


def fold_transposes(r) -> None:
    """transpose -> flatten (-> concat of flat tensors) -> dense: the dense's rows permuted instead;
    a reshape right before a flatten is dropped (the flatten of either is the same)."""
    for rs in [n for n in r.nodes if n.op == "reshape"]:
        f = _single(r, rs.output)
        if f is not None and f.op == "flatten":
            _bypass(r, rs)
    for t in [n for n in r.nodes if n.op == "transpose"]:
        f = _single(r, t.output)
        if f is None or not (f.op == "flatten" or f.op == "reshape" and len(f.attrs["shape"]) == 1):
            continue
        d, offset = _single(r, f.output), 0
        if d is not None and d.op == "concat" and len(r.vals[d.output].shape) == 2:
            for i in d.inputs[: d.inputs.index(f.output)]:
                offset += r.vals[i].shape[1]
            d = _single(r, d.output)
        if d is None or d.op != "dense":
            continue
        shape = r.vals[t.inputs[0]].shape[1:]
        n = int(np.prod(shape))
        idx = np.arange(n).reshape(shape).transpose(t.attrs["perm"]).ravel() + offset
        k = d.weights["kernel"].copy()
        k[idx] = d.weights["kernel"][offset : offset + n]
        d.weights["kernel"] = k
        d.attrs["rows_from"] = "transpose folded"
        _bypass(r, t)


# ----------------------------------------------------------------------------- 4. fuse


def _exact(n: ir.Node) -> bool:
    if n.op in ("relu",):
        return True
    if n.op == "clip":
        return all(
            np.isinf(v) or grid_of(v) is not None for v in (float(np.min(n.attrs["lo"])), float(np.max(n.attrs["hi"])))
        )
    if n.op == "scale_shift" and not n.attrs.get("float"):
        return (
            grid_of(n.weights["scale"]) is not None
            and grid_of(n.weights["shift"]) is not None
            and all_pow2(n.weights["scale"])
        )
    return False


def _levels(final: ir.Node) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(base, step, T): the final quantizer's outputs are base + step j, j = 0..T, per element."""
    if final.op == "quant":
        q = final.attrs["q"]
        if not q.overflow.startswith("SAT"):
            return None
        k, i, f = (np.asarray(a) for a in (q.k, q.i, q.f))
        step = 2.0**-f
        lo = np.where(k > 0, -(2.0 ** (i + f)) + (1 if q.overflow == "SAT_SYM" else 0), 0.0)
        hi = 2.0 ** (i + f) - 1
        t = np.unique(hi - lo)
        if len(t) != 1:
            return None
        return lo * step, step * np.ones_like(lo), int(t[0])
    if final.op == "bipolar":
        sc = np.asarray(final.attrs["scale"], np.float64)
        return -sc, 2 * sc, 1
    if final.op == "threshold" and not final.attrs.get("float"):
        sc = np.asarray(final.attrs.get("out_scale", 1.0), np.float64)
        return np.asarray(final.attrs.get("out_bias", 0.0), np.float64), sc, int(final.weights["thresholds"].shape[-1])
    return None


def fuse(r, sp: dict[str, Span], facts: dict[str, Any]) -> None:
    for final in [n for n in r.nodes if n.op in ("quant", "threshold", "bipolar")]:
        if final not in r.nodes:
            continue
        chain: list[ir.Node] = []
        cur = final.inputs[0]
        prod = {n.output: n for n in r.nodes}
        while cur in prod and prod[cur].op in MONO and _single(r, cur) is not None:
            chain.insert(0, prod[cur])
            cur = prod[cur].inputs[0]
        if not chain or all(_exact(n) for n in chain):
            continue
        lv = _levels(final)
        span = sp[cur]
        where = f"{final.name!r} (after {', '.join(n.name for n in chain)})"
        if lv is None or span.count() > MAX_SWEEP:
            why = "its input is not on a bounded grid" if lv is not None else "its quantizer may wrap"
            r.notes.append(f"float ops before quantizer {where} kept as float: {why}")
            continue
        _fuse(r, chain, final, cur, span, lv, facts)


def _sweep_ir(r, chain: list[ir.Node], final: ir.Node | None, x: np.ndarray) -> np.ndarray:
    for n in [*chain, final] if final is not None else chain:
        x = ir.OPS[n.op](n, x)
    return x


def _exact_final(final: ir.Node) -> ir.Node:
    """The final quantizer in exact arithmetic: a Quant with a scale that is not a power of two
    compares with its exact boundaries (x >= c s, or x > c s: the next float64 up)."""
    if "boundary" not in final.attrs:
        return final
    b = final.attrs["boundary"]
    th = np.where(final.attrs["strict"], np.nextafter(b, np.inf), b)
    return ir.Node(final.op, final.name, final.inputs, final.output, final.attrs, {"thresholds": th})


def _margin(final: ir.Node, pre: np.ndarray, j: np.ndarray, base, step) -> float:
    """The largest relative distance e in 1e-2 .. 1e-12 such that moving every float64 value before
    the quantizer by e (relative to max(1, |value|)) changes no level: float64's own rounding (about
    1e-15 here) then cannot have decided a level, so the float64 levels are the exact ones."""
    for e in 10.0 ** -np.arange(2, 13):
        d = e * np.maximum(1.0, np.abs(pre))
        if all(np.array_equal(np.rint((ir.OPS[final.op](final, pre + s * d) - base) / step), j) for s in (-1, 1)):
            return float(e)
    return 0.0


def _sweep_onnx(r, chain: list[ir.Node], final: ir.Node, start: str, v: np.ndarray) -> np.ndarray | None:
    """qonnx's executor on the file's own nodes of the chain, over every value v (IR layout out)."""
    origins = [r.origin.get(n.name) for n in [*chain, final]]
    if any(o is None for o in origins) or any(a[1] != b[2] for a, b in zip(origins[1:], origins)):
        return None
    onnx_in, onnx_out = origins[0][1], origins[-1][2]
    t_in, t_out = r.t.get(onnx_in), r.t.get(onnx_out)
    if t_in is None or t_in.name != start or t_out is None or np.any(v.astype(np.float32) != v):
        return None
    from onnx import helper, numpy_helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    nodes = [o[0] for o in origins]
    consts = {i for n in nodes for i in n.input if i and i in r.consts}
    inits = [numpy_helper.from_array(np.asarray(r.consts[c]), c) for c in sorted(consts)]
    per = int(np.prod(t_in.shape[1:]))
    step = max(1, MAX_SWEEP_ELEMENTS // max(per, 1))
    outs = []
    for s0 in range(0, len(v), step):
        vb = v[s0 : s0 + step]
        shape = (len(vb), *t_in.shape[1:])
        g = helper.make_graph(
            nodes,
            "sweep",
            [helper.make_tensor_value_info(onnx_in, 1, shape)],
            [helper.make_tensor_value_info(onnx_out, 1, None)],
            inits,
        )
        m = helper.make_model(g, opset_imports=list(r.model.opset_import))
        m.ir_version = r.model.ir_version
        mw = ModelWrapper(m).transform(InferShapes())
        xb = np.broadcast_to(vb.reshape((-1,) + (1,) * (len(shape) - 1)), shape).astype(np.float32)
        y = np.asarray(execute_onnx(mw, {onnx_in: xb})[onnx_out], np.float64)
        outs.append(y.transpose(0, *t_out.perm))
    return np.concatenate(outs)


def _fuse(r, chain, final, start: str, span: Span, lv, facts) -> None:
    base, step, t_count = lv
    v = span.lo + np.arange(int(span.count())) * 2.0**-span.f
    shape = r.vals[start].shape[1:]
    pre = _sweep_ir(r, chain, None, np.broadcast_to(v.reshape((-1,) + (1,) * len(shape)), (len(v), *shape)))
    exact = _exact_final(final)
    y64 = ir.OPS[exact.op](exact, pre)
    y = _sweep_onnx(r, chain, final, start, v)
    j64 = np.rint((y64 - base) / step)
    margin = _margin(exact, pre, j64, base, step)
    j = j64 if y is None else np.rint((y - base) / step)
    shape = j.shape[1:]
    d = np.diff(j, axis=0)
    inc, dec = np.all(d >= 0, axis=0), np.all(d <= 0, axis=0)
    if not np.all(inc | dec):
        r.notes.append(f"float ops before quantizer {final.name!r} kept as float: not monotone over its inputs")
        return
    jj = np.where(inc, j, t_count - j)  # counts, non-decreasing in v
    ms = np.arange(1, t_count + 1)
    reached = jj[..., None] >= ms  # (S, *shape, T)
    first = np.argmax(reached, axis=0)
    th = np.where(reached.any(axis=0), v[first], span.hi + 2.0**-span.f)
    out_scale = np.where(inc, step, -step)
    out_bias = np.where(inc, base, base + step * t_count)
    th, out_scale, out_bias = (
        _compress(a, len(shape))
        for a in (np.asarray(th), np.broadcast_to(out_scale, shape), np.broadcast_to(out_bias, shape))
    )
    decided = None if y is None else int(np.sum(j != j64))
    node = ir.Node(
        "threshold",
        final.name,
        [start],
        final.output,
        {"out_scale": out_scale, "out_bias": out_bias, "fused": [n.name for n in chain] + [final.name]},
        {"thresholds": th},
    )
    r.nodes[r.nodes.index(final)] = node
    for n in chain:
        r.nodes.remove(n)
    facts[final.name] = {
        "rule": "threshold on the input grid",
        "fused": node.attrs["fused"],
        "inputs": int(len(v)),
        "grid": f"2**-{span.f} in [{span.lo}, {span.hi}]",
        "elements": int(np.prod(shape)),
        "levels": t_count,
        "reference": "float64" if y is None else "qonnx executor",
        "float32_decided": decided,
        "float64_margin": margin,
    }
    check = np.broadcast_to(v.reshape((-1,) + (1,) * len(shape)), (len(v), *shape))
    if not np.array_equal(np.rint((ir.OPS["threshold"](node, check) - base) / step), j):
        raise AssertionError(f"fused threshold {final.name!r} differs from its sweep")  # a bug, not the user's


def _compress(a: np.ndarray, nd: int) -> np.ndarray:
    """Axes (of the first nd) along which a is constant reduced to 1, leading size-1 axes dropped."""
    a = np.asarray(a, np.float64)
    for ax in range(nd):
        if a.shape[ax] > 1 and np.all(a == a.take([0], axis=ax)):
            a = a.take([0], axis=ax)
    while a.ndim and a.shape[0] == 1 and nd > 0:
        a, nd = a[0], nd - 1
    return a


# ----------------------------------------------------------------------------- 5. finishing


def tighten(r, sp: dict[str, Span], facts: dict[str, Any]) -> None:
    unchanged = []  # wide quantizers that pass every reachable value as it is, read by another quantizer
    for n in r.nodes:
        s = sp[n.inputs[0]] if n.inputs else None
        if n.op == "quant" and n.attrs.get("wide") and s is not None and np.isfinite(s.lo) and np.isfinite(s.hi):
            q = n.attrs["q"]
            i = needed_integer(s.lo, s.hi, int(np.max(q.f)), True)
            n.attrs["q"] = ir.Quant(q.k, np.full_like(np.asarray(q.i), i), q.f, q.rounding, q.overflow)
            n.attrs.pop("wide")
            users = _consumers(r, n.output)
            on_grid = s.f is not None and s.f <= int(np.min(q.f)) and (s.lo >= 0 or bool(np.all(np.asarray(q.k))))
            if on_grid and len(users) == 1 and users[0].op == "quant" and n.output not in r.outputs:
                unchanged.append(n)  # e.g. Trunc v2's requantization of its input onto the input scale
        if n.op == "threshold" and "boundary" in n.attrs:
            facts[n.name] = _on_grid(n, s)
    for n in unchanged:  # hls4ml keeps only the last of two quantizers in a row: drop the identity
        _bypass(r, n)


def _on_grid(n: ir.Node, s: Span | None) -> dict[str, Any]:
    """The thresholds of a Quant with a scale that is not a power of two, on its input's grid."""
    fact: dict[str, Any] = {
        "rule": "Quant with a scale that is not a power of two: thresholds",
        "levels": int(n.weights["thresholds"].shape[-1]),
        "float32_decided": n.attrs["float32_decided"],
        "thresholds": "qonnx's float32 formula, on float32 inputs",
    }
    if s is None or s.count() == np.inf:
        return fact
    step = 2.0**-s.f
    g32 = np.ceil(n.weights["thresholds"] / step) * step
    m = np.ceil(n.attrs["boundary"] / step)
    exact = np.where(n.attrs["strict"] & (m * step == n.attrs["boundary"]), m + 1, m) * step
    if max(abs(s.lo), abs(s.hi)) / step < 2**24:  # the input fits float32: qonnx's executor holds it exactly
        n.weights["thresholds"] = g32
        fact["thresholds"] = f"qonnx's float32 formula, on the input grid 2**-{s.f}"
        fact["float32_decided_grid_points"] = int(np.sum(np.abs(g32 - exact)) / step)
    else:
        n.weights["thresholds"] = exact
        fact["thresholds"] = f"exact, on the input grid 2**-{s.f} (wider than float32)"
    return fact


def input_quant(r) -> None:
    for inp in r.inputs:
        users = _consumers(r, inp.name)
        if inp.q is None and len(users) == 1 and users[0].op == "quant" and inp.name not in r.outputs:
            q = users[0]
            inp.q = q.attrs["q"]
            _bypass(r, q)
        elif len(users) == 1 and users[0].op == "bipolar":
            r.notes.append(f"input {inp.name!r} is read as bipolar (sign only)")


def prune(r) -> None:
    while True:
        used = {i for n in r.nodes for i in n.inputs} | set(r.outputs)
        dead = [n for n in r.nodes if n.output not in used]
        if not dead:
            return
        for n in dead:
            r.nodes.remove(n)
