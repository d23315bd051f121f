"""Graph rewrites that bring a fixed-point import graph (after `policy`) to the ops `lower` maps one
to one onto hgq2 layers. Each rewrite keeps `evaluate` exactly (the values are the same numbers);
`lower` checks the Keras model against the graph before the rewrites anyway.

- `tighten_quants`: a quantizer whose input cannot overflow it becomes WRAP with the integer
  bits (and sign) of what it can reach; one whose input grid is no finer than its own becomes
  TRN (interval bounds, `analysis`). Cheaper, same values.
- `fold_pads`: a `pad` read only by a conv becomes part of the conv's padding.
- `quants_into_luts`: a quantizer read only by a lut, whose values the lut's input format passes
  unchanged, becomes that input format (one quantizer, whose words index the table).
- `split_concats`: concat -> [quant] -> dense becomes one dense per part (the bias in the first)
  and an add (da4ml cannot concatenate unequal widths; hls4ml mishandles a wrapping quantizer
  after a concat: layer_coverage.md).
- `expand_thresholds`: `bipolar` (a threshold at 0) and `threshold` become units: for x on the
  grid 2**-f (lsb e), [x >= t] = Q(x - t + e) / e with Q the unsigned 1-bit SAT quantizer of lsb e
  (x - t + e <= 0 gives 0, >= e gives e: x is on the grid); a dense / 1x1 conv of 0/1 weights and
  biases e - t makes x - t + e for every unit, the quantizer makes the units, a second dense / 1x1
  conv sums them with weights out_scale / e and bias out_bias. The first folds into a preceding
  dense/conv read only by it (its columns copied: exact).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from trigger_ml.fixed import needed_integer
from trigger_ml.interop import analysis as A
from trigger_ml.interop.ir import Graph, Node, Quant
from trigger_ml.interop.policy import float32_exact


def expand(graph: Graph) -> Graph:
    """The rewritten copy of a fixed-point graph (see the module docstring)."""
    import copy

    g = copy.deepcopy(graph)
    fold_pads(g)
    split_concats(g)
    expand_thresholds(g)
    fold_relus(g)
    tighten_quants(g)
    quants_into_luts(g)
    g.check()
    return g


def _sole(g: Graph, t: str) -> Node | None:
    c = g.consumers(t)
    return c[0] if len(c) == 1 and t not in g.outputs else None


def _names(g: Graph) -> set[str]:
    return {n.name for n in g.nodes} | {n.output for n in g.nodes} | {i.name for i in g.inputs}


def _fresh(g: Graph, base: str) -> str:
    names, j = _names(g), 0
    while f"{base}_{j}" in names:
        j += 1
    return f"{base}_{j}"


def tighten_quants(g: Graph) -> None:
    b, grids = A.bounds(g), A.grids(g)
    for n in g.nodes:
        if n.op != "quant":
            continue
        q: Quant = n.attrs["q"]
        fmt = q.uniform()
        if fmt is None:
            continue
        lo, hi = b[n.inputs[0]]
        ql, qh, over = A.quant_bounds(q, lo, hi)
        rounding = "TRN" if grids[n.inputs[0]] is not None and grids[n.inputs[0]] <= fmt.frac else q.rounding
        if over.any():
            n.attrs["q"] = replace(q, rounding=rounding)
            continue
        signed = bool(np.any(ql < 0))
        i = needed_integer(float(ql.min()), float(qh.max()), fmt.frac, signed)
        i = max(i, 1 - fmt.frac - int(signed))
        n.attrs["q"] = Quant(np.array(int(signed)), np.array(i), np.array(fmt.frac), rounding, "WRAP")


def quants_into_luts(g: Graph) -> None:
    """A quantizer read only by a lut (or a quantizer) whose input format passes its values unchanged
    becomes the lut's input format (the second quantizer is dropped): hls4ml keeps only the last of
    two quantizers in a row."""
    b = A.bounds(g)
    for q2 in [n for n in g.nodes if n.op == "quant"]:
        prev = g.producers().get(q2.inputs[0])
        if prev is None or prev.op != "quant" or _sole(g, prev.output) is not q2:
            continue
        lo, hi = b[prev.output]
        _, _, over = A.quant_bounds(q2.attrs["q"], lo, hi)
        f1, f2 = prev.attrs["q"].uniform(), q2.attrs["q"].uniform()
        if f1 is not None and f2 is not None and f2.frac >= f1.frac and not over.any():
            q2.inputs = list(prev.inputs)
            q2.attrs = {**q2.attrs, "q": prev.attrs["q"]}
            g.nodes.remove(prev)
    for lut in [n for n in g.nodes if n.op == "lut"]:
        prev = g.producers().get(lut.inputs[0])
        if prev is None or prev.op != "quant" or _sole(g, prev.output) is not lut:
            continue
        q_in, q = lut.attrs["q_in"], prev.attrs["q"]
        if q.uniform() is None or q_in.uniform() is None or q_in.uniform().frac < q.uniform().frac:
            continue
        lo, hi = b[prev.output]
        _, _, over = A.quant_bounds(q_in, lo, hi)
        if over.any():
            continue
        lut.attrs = {**lut.attrs, "q_in": q}
        lut.inputs = list(prev.inputs)
        g.nodes.remove(prev)


def _unsigned_sat(q: Quant) -> Quant:
    return Quant(np.zeros_like(np.asarray(q.k)), q.i, q.f, q.rounding, "SAT")


def fold_relus(g: Graph) -> None:
    """relu(q(x)) with q saturating, and q(relu(x)) (relu not fused into a dense/conv) with q unable
    to overflow upwards or saturating, are one unsigned saturating quantizer (no two in a row)."""
    b = A.bounds(g)
    for r in [n for n in g.nodes if n.op == "relu"]:
        prev = g.producers().get(r.inputs[0])
        nxt = _sole(g, r.output)
        if (
            prev is not None
            and prev.op == "quant"
            and _sole(g, prev.output) is r
            and prev.attrs["q"].overflow != "WRAP"
        ):
            prev.attrs = {**prev.attrs, "q": _unsigned_sat(prev.attrs["q"])}
            prev.output = r.output
            g.nodes.remove(r)
        elif (
            nxt is not None
            and nxt.op == "quant"
            and not (prev is not None and prev.op in ("dense", "conv") and _sole(g, prev.output) is r)
            and not (prev is not None and prev.op == "quant")  # would put two quantizers in a row
        ):
            q = nxt.attrs["q"]
            _, _, over = A.quant_bounds(q, np.maximum(b[r.inputs[0]][0], 0), np.maximum(b[r.inputs[0]][1], 0))
            if q.overflow in ("SAT", "SAT_SYM") or not over.any():
                nxt.attrs = {**nxt.attrs, "q": _unsigned_sat(q)}
                nxt.inputs = list(r.inputs)
                g.nodes.remove(r)


def fold_pads(g: Graph) -> None:
    for p in [n for n in g.nodes if n.op == "pad"]:
        if all(tuple(a) == (0, 0) for a in p.attrs["pads"]):  # no padding: the identity
            for m in g.nodes:
                m.inputs = [p.inputs[0] if t == p.output else t for t in m.inputs]
            if p.output in g.outputs:
                continue
            g.nodes.remove(p)
            continue
        c = _sole(g, p.output)
        if c is None or c.op != "conv":
            continue
        nd = c.weights["kernel"].ndim - 2
        pads = c.attrs.get("pads", ((0, 0),) * nd)
        c.attrs["pads"] = tuple((a[0] + b[0], a[1] + b[1]) for a, b in zip(p.attrs["pads"], pads))
        c.inputs = [p.inputs[0] if t == p.output else t for t in c.inputs]
        g.nodes.remove(p)


def split_concats(g: Graph) -> None:
    shp = A.shapes(g)
    for cat in [n for n in g.nodes if n.op == "concat"]:
        if any(len(shp[t]) != 1 for t in cat.inputs):
            continue
        nxt = _sole(g, cat.output)
        quant = None
        if nxt is not None and nxt.op == "quant":
            quant, nxt = nxt, _sole(g, nxt.output)
        if nxt is None or nxt.op != "dense":
            continue
        edges = np.cumsum([0, *[shp[t][0] for t in cat.inputs]])
        kernel, bias = nxt.weights["kernel"], nxt.weights.get("bias")
        taken = _names(g)

        def fresh(base: str, taken: set[str] = taken) -> str:
            j = 0
            while f"{base}_{j}" in taken:
                j += 1
            taken.add(f"{base}_{j}")
            return f"{base}_{j}"

        new: list[Node] = []
        parts = []
        for j, t in enumerate(cat.inputs):
            src = t
            if quant is not None:
                q: Quant = quant.attrs["q"]
                sl = slice(int(edges[j]), int(edges[j + 1]))
                k, i, f = (np.broadcast_to(np.asarray(a), (int(edges[-1]),))[sl] for a in (q.k, q.i, q.f))
                part_q = Quant(np.array(k), np.array(i), np.array(f), q.rounding, q.overflow)
                part_q = Quant.of(part_q.uniform()) if part_q.uniform() is not None else part_q
                qn = Node("quant", fresh(f"{quant.name}_part"), [t], fresh(f"{quant.output}_part"), {"q": part_q})
                new.append(qn)
                src = qn.output
            w = {"kernel": kernel[edges[j] : edges[j + 1]]}
            if j == 0 and bias is not None:
                w["bias"] = bias
            single = len(cat.inputs) == 1
            d = Node(
                "dense", fresh(f"{nxt.name}_part"), [src], nxt.output if single else fresh(f"{nxt.output}_part"), {}, w
            )
            new.append(d)
            parts.append(d.output)
        out = parts[0]
        for j, t in enumerate(parts[1:]):
            last = j == len(parts) - 2
            add = Node("add", fresh(f"{nxt.name}_sum"), [out, t], nxt.output if last else fresh("sum"))
            new.append(add)
            out = add.output
        for m in (cat, quant):
            if m is not None:
                g.nodes.remove(m)
        pos = g.nodes.index(nxt)
        g.nodes[pos : pos + 1] = new


def expand_thresholds(g: Graph) -> None:
    shp = A.shapes(g)
    for n in [n for n in g.nodes if n.op in ("bipolar", "threshold")]:
        grids = A.grids(g)
        f = grids[n.inputs[0]]
        x_shape = shp[n.inputs[0]]
        c = x_shape[-1]
        if f is None:
            continue  # lower names it
        if n.op == "bipolar":
            s = float(n.attrs["scale"])
            th, out_scale, out_bias = np.zeros((c, 1)), np.full(c, 2 * s), np.full(c, -s)
        else:
            th = np.asarray(n.weights["thresholds"], np.float64)  # (C, T), or (T,) shared by every channel
            th = np.broadcast_to(th, (c, th.shape[-1])) if th.ndim == 1 else th.reshape(c, -1)
            out_scale = np.broadcast_to(np.asarray(n.attrs.get("out_scale", 1.0), np.float64), (c,))
            out_bias = np.broadcast_to(np.asarray(n.attrs.get("out_bias", 0.0), np.float64), (c,))
        e = 2.0**-f
        units = [(ch, np.ceil(t * 2.0**f) * e) for ch in range(c) for t in th[ch] if np.isfinite(t)]
        i = g.nodes.index(n)
        if not units:
            g.nodes[i] = Node(
                "scale_shift", n.name, n.inputs, n.output, {}, {"scale": np.zeros(c), "shift": out_bias.copy()}
            )
            continue
        u = len(units)
        sel = np.zeros((c, u))
        for j, (ch, _) in enumerate(units):
            sel[ch, j] = 1.0
        bias = np.array([e - t for _, t in units])
        back = np.zeros((u, c))
        for j, (ch, _) in enumerate(units):
            back[j, ch] = out_scale[ch] / e
        nd = len(x_shape) - 1
        op = "dense" if nd == 0 else "conv"
        lift = (lambda k: k) if nd == 0 else (lambda k, nd=nd: k.reshape((1,) * nd + k.shape))
        t_units, t_bits = _fresh(g, f"{n.output}_pre"), _fresh(g, f"{n.output}_units")
        first = Node(op, _fresh(g, f"{n.name}_sel"), n.inputs, t_units, {}, {"kernel": lift(sel), "bias": bias})
        unit_q = Quant(np.array(0), np.array(1 - f), np.array(f), "TRN", "SAT")
        quant = Node("quant", _fresh(g, f"{n.name}_step"), [t_units], t_bits, {"q": unit_q})
        last = Node(op, n.name, [t_bits], n.output, {}, {"kernel": lift(back), "bias": out_bias.copy()})
        g.nodes[i : i + 1] = [first, quant, last]
        _fold_selection(g, first)


def _fold_selection(g: Graph, sel: Node) -> None:
    """A 0/1 selection dense/conv read from a dense/conv that feeds only it: one node (columns copied)."""
    prev = g.producers().get(sel.inputs[0])
    if prev is None or prev.op != sel.op or _sole(g, prev.output) is not sel:
        return
    if prev.op == "conv" and any(s != 1 for s in sel.weights["kernel"].shape[:-2]):
        return
    s = sel.weights["kernel"].reshape(sel.weights["kernel"].shape[-2:])
    kernel = np.tensordot(prev.weights["kernel"], s, axes=([-1], [0]))
    bias = prev.weights.get("bias", np.zeros(s.shape[0])) @ s + sel.weights["bias"]
    if not (float32_exact(kernel) and float32_exact(bias)):
        return
    prev.weights = {"kernel": kernel, "bias": bias}
    prev.output, old = sel.output, prev.output
    g.nodes.remove(sel)
    assert not g.consumers(old)
