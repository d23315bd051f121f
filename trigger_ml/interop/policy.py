"""The precision policy: an import graph (`ir.Graph`) made fixed point end to end, every decision
stated, and a verdict: `exact` (the result computes what the source computes, on the inputs'
formats) or `fidelity` (some float op was approximated).

The rule, in the order the passes apply it (`apply`):
1. An input without a format gets `input_format` (default fixed<16,6>, hls4ml's default; RND,
   SAT). Its words are the firmware's inputs; this choice alone does not make the import inexact.
2. A batch norm (`scale_shift`) whose input is a float dense/conv that feeds nothing else is folded
   into it in float64 (kernel * scale, bias * scale + shift) before any rounding.
3. Float weights: each dense/conv kernel and bias is rounded (half up) to `weight_bits`
   significant bits, sign included, per tensor (fraction bits from its largest magnitude). A tensor
   that already fits is untouched; one that changes makes the import `fidelity`.
4. An average over a window that is not a power of two (avgpool, global_avgpool) becomes a window
   sum (a conv / dense of ones: exact) and a `scale_shift` by 1/N.
5. A float block (a dense/conv from 3, optionally with its relu; an average from 4) whose output
   feeds no quantizer (nor a sigmoid/tanh/selu, whose table's input format is its quantizer) gets one: `act_frac_bits` fraction bits (RND, SAT), the integer bits of its
   reachable range from interval bounds (`analysis.bounds`), so it never overflows.
6. Exactness (the FINN streamlining idea, issue 19): a `scale_shift` with a non-dyadic scale or
   shift (a batch norm, 1/N) feeding a quantizer (directly or through a relu), whose input lies on
   a known grid within known bounds, is replaced EXACTLY. Every reachable input word of each
   channel is enumerated and the reference y = quant(relu?(x * scale + shift)), evaluated in
   float64 as `ir.Graph.evaluate` does, is computed. Preferred: a dyadic rescale (c, d) with the
   fewest significant bits such that quant(relu?(x * c + d)) == y on every word (c rounds the
   scale; d is chosen inside the interval every word allows, then the equality is checked word by
   word). Else integer thresholds (`threshold`: y = y(x_min) +- lsb * #(x >= t), the steps of the
   monotone y). The number of words where float32 arithmetic would round otherwise than float64
   (a tie decided by the precision) is counted in the decision. More than `max_enumerate` words:
   not proven, handled by 7.
7. Any other `scale_shift`: dyadic ones stay exact (folded into a preceding dense/conv when that
   feeds nothing else and the result is float32-exact, else a standalone layer); non-dyadic ones
   are folded in float64 and rounded (3), or rounded where they stand, with a quantizer as in 5.
8. sigmoid / tanh / selu (Keras' constants; a selu whose input can be positive is first split, see
   `split_selu`) -> `lut`: input format = exactly what its input can reach (grid and bounds),
   at most `lut_max_bits` bits (else fraction bits are dropped, rounding, and the range saturated);
   output: `act_frac_bits` fraction bits (more when a table entry lies so near a rounding boundary
   that float32, in which hls4ml builds the table, would round it otherwise) and the integer bits
   of the table's values. softmax -> `softmax_table` (hls4ml's stable table softmax = hgq2's
   QSoftmax): exp input unsigned SAT, integer bits up to where exp(-d) rounds to 0, at most
   `exp_table_bits` bits (4096 entries); inverse input unsigned SAT holding the sum of n exps, at
   most `inv_table_bits` bits (4096 entries); tables of `act_frac_bits` fraction bits, widened
   until every entry rounds the same in float32 and float64 and 1/s == 1/(s + 1e-7) after rounding.
9. Checks: every tensor on a grid, at most 53 bits (`fixed.MAX_EXACT_BITS`); one error lists every
   offending tensor.

`apply` returns the new graph, the decisions (for the import summary) and `exact`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from trigger_ml.errors import SchemaError, UnsupportedError
from trigger_ml.fixed import MAX_EXACT_BITS, Fixed, needed_integer
from trigger_ml.interop import analysis as A
from trigger_ml.interop.exact_rule import replace_monotone
from trigger_ml.interop.ir import SELU_ALPHA, SELU_SCALE, Graph, Node, Quant
from trigger_ml.interop.tables import lut_formats, softmax_formats

FLOAT32_BITS = 24
LUT_OPS = ("sigmoid", "tanh", "selu")  # float activations made tables (keras activations of these names)
SATURATING_LUTS = ("sigmoid", "tanh")  # one table over the input's reachable range, saturated beyond +-16


def keras_selu(n: Node) -> bool:
    """A selu with Keras' constants (ONNX's defaults are them in float32): hgq2's table computes that one."""
    a, g = float(n.attrs.get("alpha", SELU_ALPHA)), float(n.attrs.get("gamma", SELU_SCALE))
    return np.float32(a) == np.float32(SELU_ALPHA) and np.float32(g) == np.float32(SELU_SCALE)


@dataclass(frozen=True)
class PolicyOptions:
    input_format: str = "fixed<16,6>"
    weight_bits: int = 16
    act_frac_bits: int = 10
    lut_max_bits: int = 12
    exp_table_bits: int = 12  # 4096 entries: 1024 lost argmax agreement on low-confidence five-class heads (0.948)
    inv_table_bits: int = 12
    max_enumerate: int = 1 << 22  # reachable words enumerated per scale_shift (all channels)
    max_rel_error: float = 0.01  # fidelity gates (verify): largest |fixed - source| / output range
    argmax_agreement: float = 0.99  # ... and argmax (one output: sign) agreement

    def __post_init__(self) -> None:
        if not 2 <= self.weight_bits <= FLOAT32_BITS:
            raise SchemaError(f"weight_bits {self.weight_bits}", f"use 2 .. {FLOAT32_BITS} (weights are float32)")
        if not 0 <= self.act_frac_bits <= 32:
            raise SchemaError(f"act_frac_bits {self.act_frac_bits}", "use 0 .. 32")

    def input_fixed(self) -> Fixed:
        return Fixed.parse(self.input_format).with_modes("RND", "SAT")


class RangeError(SchemaError):
    """A tensor's interval bounds reach infinity: the file's values leave no fixed-point format."""


def policy_options(**opts: Any) -> PolicyOptions:
    """The policy from the command line's options (`--input-format`, `--weight-bits`, `--act-frac-bits`;
    None keeps the default)."""
    return PolicyOptions(**{k: v for k, v in opts.items() if v is not None and k in PolicyOptions.__dataclass_fields__})


@dataclass
class Decision:
    node: str
    op: str
    became: str
    approximate: bool
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class PolicyResult:
    graph: Graph
    decisions: list[Decision]

    @property
    def exact(self) -> bool:
        return not any(d.approximate for d in self.decisions)

    def summary(self) -> list[dict[str, Any]]:
        return [asdict(d) for d in self.decisions]


def apply(graph: Graph, options: PolicyOptions = PolicyOptions()) -> PolicyResult:
    """The policy's fixed-point graph of `graph` (which is not modified); see the module docstring."""
    graph.check()
    g = copy.deepcopy(graph)
    p = _Pass(g, options)
    p.inputs()
    p.finite_bounds()
    float_nodes = p.fold_float_bn()
    float_nodes |= p.round_weights()
    averages = p.averages()
    p.quantize_blocks(float_nodes, averages)
    p.exact_scale_shifts()
    p.other_scale_shifts()
    p.float_activations()
    p.fold_dyadic()
    p.check()
    g.check()
    return PolicyResult(g, p.decisions)


# ----------------------------------------------------------------------------- helpers


def round_bits(v: np.ndarray, bits: int) -> np.ndarray:
    """v rounded (half up) to `bits` significant bits including the sign, per tensor."""
    v = np.asarray(v, np.float64)
    m = float(np.max(np.abs(v), initial=0.0))
    if m == 0:
        return np.zeros_like(v)
    f = bits - 1 - (math.floor(math.log2(m)) + 1)
    return np.clip(np.floor(v * 2.0**f + 0.5), -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1) * 2.0**-f


def float32_exact(v: Any) -> bool:
    v = np.asarray(v, np.float64)
    return bool(np.all(np.isfinite(v)) and np.all(v.astype(np.float32).astype(np.float64) == v))


def dyadic(v: Any) -> bool:
    return A.frac_of(v) is not None and float32_exact(v)


def _fixed_for(lo: float, hi: float, f: int, rounding: str = "RND", overflow: str = "SAT") -> Fixed:
    """The format with f fraction bits holding [lo, hi] rounded outward onto its grid."""
    lo_r, hi_r = math.floor(lo * 2.0**f) * 2.0**-f, math.ceil(hi * 2.0**f) * 2.0**-f
    signed = lo_r < 0
    i = needed_integer(lo_r, hi_r, f, signed)
    if int(signed) + i + f < 1:
        i = 1 - f - int(signed)
    return Fixed(signed, i, f, rounding, overflow)


class _Pass:
    def __init__(self, g: Graph, opts: PolicyOptions) -> None:
        self.g, self.o = g, opts
        self.decisions: list[Decision] = []
        self._n = 0

    # -- graph edits

    def fresh(self, base: str) -> str:
        names = {n.name for n in self.g.nodes} | {n.output for n in self.g.nodes} | {i.name for i in self.g.inputs}
        while True:
            self._n += 1
            name = f"{base}__p{self._n}"
            if name not in names:
                return name

    def consumers(self, t: str) -> list[Node]:
        return self.g.consumers(t)

    def sole(self, t: str) -> Node | None:
        """The one consumer of t, when t has exactly one and is not a graph output."""
        c = self.consumers(t)
        return c[0] if len(c) == 1 and t not in self.g.outputs else None

    def producer(self, t: str) -> Node | None:
        return self.g.producers().get(t)

    def remove(self, n: Node) -> None:
        """Remove a one-input node, its consumers reading its input instead."""
        src, out = n.inputs[0], n.output
        self.g.nodes.remove(n)
        for m in self.g.nodes:
            m.inputs = [src if t == out else t for t in m.inputs]
        self.g.outputs = [src if t == out else t for t in self.g.outputs]

    def insert_after(self, t: str, node: Node) -> None:
        """Insert `node` (reading t, writing node.output) right after t's producer; every consumer of
        t and the graph outputs then read node.output."""
        for m in self.g.nodes:
            m.inputs = [node.output if x == t else x for x in m.inputs]
        self.g.outputs = [node.output if x == t else x for x in self.g.outputs]
        prod = self.producer(t)
        pos = self.g.nodes.index(prod) + 1 if prod is not None else 0
        self.g.nodes.insert(pos, node)

    def decide(self, n: Node | str, op: str, became: str, approximate: bool, **detail: Any) -> None:
        name = n if isinstance(n, str) else n.name
        self.decisions.append(Decision(name, op, became, approximate, detail))

    def facts(self) -> tuple[dict, dict]:
        return A.bounds(self.g), A.grids(self.g)

    # -- 1. inputs

    def inputs(self) -> None:
        fmt = self.o.input_fixed()
        for inp in self.g.inputs:
            if inp.q is None:
                inp.q = Quant.of(fmt)
                self.decide(inp.name, "input", f"input format {fmt}", False, format=str(fmt))

    # -- 2. batch norm into a float dense/conv

    def finite_bounds(self) -> None:
        """Interval bounds past float64's range (huge weights, or many layers that each widen the
        range) leave no fixed-point format: one clear error, not an overflow later."""
        b = A.bounds(self.g)
        bad = [
            n for n in self.g.nodes if not (np.all(np.isfinite(b[n.output][0])) and np.all(np.isfinite(b[n.output][1])))
        ]
        if bad:
            raise RangeError(
                f"the reachable range of {len(bad)} tensor(s) passes float64's range (interval bounds reach "
                f"infinity), first at node {bad[0].name!r} ({bad[0].op}): no fixed-point format holds it",
                "check the model's weights (a trigger model's values stay far below 1e300); quantize its "
                "activations in the source so their ranges are bounded",
            )

    def _is_float(self, n: Node) -> bool:
        return any(not np.array_equal(round_bits(w, self.o.weight_bits), w) for w in n.weights.values())

    def fold_float_bn(self) -> set[str]:
        out = set()
        for s in [n for n in self.g.nodes if n.op == "scale_shift"]:
            d = self.producer(s.inputs[0])
            if d is None or d.op not in ("dense", "conv") or self.sole(d.output) is not s or not self._is_float(d):
                continue
            _fold(d, s.weights["scale"], s.weights["shift"])
            self.remove(s)
            out.add(d.name)
            self.decide(s, "scale_shift", f"folded into float {d.op} {d.name!r} (float64)", False)
        return out

    # -- 3. weights

    def round_weights(self) -> set[str]:
        out = set()
        for n in [n for n in self.g.nodes if n.op in ("dense", "conv")]:
            changed = []
            for key, w in n.weights.items():
                r = round_bits(w, self.o.weight_bits)
                if not np.array_equal(r, w):
                    changed.append(key)
                    n.weights[key] = r
            if changed:
                out.add(n.name)
                self.decide(n, n.op, f"{'/'.join(changed)} rounded to {self.o.weight_bits} bits", True)
        return out

    # -- 4. averages over windows that are not a power of two

    def averages(self) -> set[str]:
        out = set()
        grids = A.grids(self.g)
        shp = A.shapes(self.g)
        for n in [n for n in self.g.nodes if n.op in ("avgpool", "global_avgpool")]:
            if grids[n.inputs[0]] is None or grids[n.output] is not None:
                continue
            c = shp[n.inputs[0]][-1]
            if n.op == "avgpool":
                pool = tuple(n.attrs["pool"])
                counts = A.pool_counts(n, shp[n.inputs[0]]) if not n.attrs.get("count_pad") else None
                if counts is not None and len(np.unique(counts)) != 1:
                    continue  # windows of several sizes: left as a float op (check() names it)
                count = float(np.prod(pool))
                kernel = np.zeros((*pool, c, c))
                for ch in range(c):
                    kernel[..., ch, ch] = 1.0
                node = Node(
                    "conv",
                    n.name,
                    n.inputs,
                    self.fresh(n.output),
                    {
                        "strides": tuple(n.attrs.get("strides", pool)),
                        "pads": n.attrs.get("pads", ((0, 0),) * len(pool)),
                    },
                    {"kernel": kernel, "bias": np.zeros(c)},
                )
            else:
                count = float(np.prod(shp[n.inputs[0]][:-1]))
                flat = Node("flatten", self.fresh(n.name), n.inputs, self.fresh(n.output))
                kernel = np.tile(np.eye(c), (int(count), 1))
                node = Node(
                    "dense", n.name, [flat.output], self.fresh(n.output), {}, {"kernel": kernel, "bias": np.zeros(c)}
                )
                self.g.nodes.insert(self.g.nodes.index(n), flat)
            scale = Node(
                "scale_shift",
                self.fresh(n.name),
                [node.output],
                n.output,
                {},
                {"scale": np.full(c, 1.0 / count), "shift": np.zeros(c)},
            )
            i = self.g.nodes.index(n)
            self.g.nodes[i : i + 1] = [node, scale]
            out.add(scale.name)
            self.decide(n, n.op, f"window sum ({node.op}) and a scale by 1/{count:g}", False)
        return out

    # -- 5. quantizers after float blocks

    def quantize_blocks(self, float_nodes: set[str], averages: set[str]) -> None:
        for name in sorted(float_nodes | averages, key=lambda x: [n.name for n in self.g.nodes].index(x)):
            n = next(m for m in self.g.nodes if m.name == name)
            t = n.output
            nxt = self.sole(t)
            if nxt is not None and nxt.op == "relu":
                t, nxt = nxt.output, self.sole(nxt.output)
            if nxt is not None and nxt.op in ("quant", *SATURATING_LUTS):
                continue  # a lut's input format quantizes it (two quantizers in a row: hls4ml keeps the last)
            self.add_quant(t, n)

    def add_quant(self, t: str, why: Node) -> Fixed:
        b, _ = self.facts()
        lo, hi = b[t]
        fmt = _fixed_for(float(lo.min()), float(hi.max()), self.o.act_frac_bits)
        q = Node("quant", self.fresh(f"{why.name}_q"), [t], self.fresh(t), {"q": Quant.of(fmt)})
        self.insert_after(t, q)
        self.decide(why, why.op, f"output quantized to {fmt}", True, format=str(fmt))
        return fmt

    # -- 6. exact replacement of monotone per-channel float ops before a quantizer

    def exact_scale_shifts(self) -> None:
        for s in [n for n in self.g.nodes if n.op == "scale_shift"]:
            if dyadic(s.weights["scale"]) and dyadic(s.weights["shift"]):
                continue
            relu = None
            nxt = self.sole(s.output)
            if nxt is not None and nxt.op == "relu":
                relu, nxt = nxt, self.sole(nxt.output)
            if nxt is None or nxt.op != "quant":
                continue
            b, grids = self.facts()
            f = grids[s.inputs[0]]
            if f is None:
                continue
            res = replace_monotone(
                b[s.inputs[0]],
                f,
                s.weights["scale"],
                s.weights["shift"],
                relu is not None,
                nxt.attrs["q"],
                self.o.max_enumerate,
            )
            if res is None:
                continue
            kind, detail = res["kind"], res["detail"]
            if kind == "rescale":
                s.weights["scale"], s.weights["shift"] = res["scale"], res["shift"]
                self.decide(s, "scale_shift", "exact dyadic rescale (proven on every reachable word)", False, **detail)
            else:
                th = Node(
                    "threshold",
                    s.name,
                    [s.inputs[0]],
                    nxt.output,
                    {"out_scale": res["out_scale"], "out_bias": res["out_bias"]},
                    {"thresholds": res["thresholds"]},
                )
                i = self.g.nodes.index(s)
                for m in (s, relu, nxt):
                    if m is not None:
                        self.g.nodes.remove(m)
                self.g.nodes.insert(i, th)
                self.decide(
                    s, "scale_shift", "exact integer thresholds (proven on every reachable word)", False, **detail
                )

    # -- 7. other scale_shifts

    def other_scale_shifts(self) -> None:
        for s in [n for n in self.g.nodes if n.op == "scale_shift"]:
            if dyadic(s.weights["scale"]) and dyadic(s.weights["shift"]):
                continue
            d = self.producer(s.inputs[0])
            if d is not None and d.op in ("dense", "conv") and self.sole(d.output) is s:
                _fold(d, s.weights["scale"], s.weights["shift"])
                for key in list(d.weights):
                    d.weights[key] = round_bits(d.weights[key], self.o.weight_bits)
                self.remove(s)
                self.decide(
                    s, "scale_shift", f"folded into {d.op} {d.name!r}, rounded to {self.o.weight_bits} bits", True
                )
                block = d
            else:
                for key in ("scale", "shift"):
                    s.weights[key] = round_bits(s.weights[key], self.o.weight_bits)
                self.decide(s, "scale_shift", f"scale and shift rounded to {self.o.weight_bits} bits", True)
                block = s
            t = block.output
            nxt = self.sole(t)
            if nxt is not None and nxt.op == "relu":
                t, nxt = nxt.output, self.sole(nxt.output)
            if nxt is None or nxt.op != "quant":
                self.add_quant(t, block)

    # -- 8. sigmoid, tanh, selu, softmax

    def float_activations(self) -> None:
        for n in [n for n in self.g.nodes if n.op in (*LUT_OPS, "softmax")]:
            if n.op == "selu" and not keras_selu(n):
                continue  # check() names it
            b, grids = self.facts()
            lo, hi = b[n.inputs[0]]
            f = grids[n.inputs[0]]
            if f is None:
                continue  # check() names it
            if n.op == "selu" and float(hi.max()) > 0:
                self.split_selu(n)
                continue
            if n.op == "softmax":
                axis = int(n.attrs.get("axis", -1))
                if axis not in (-1, len(lo.shape) - 1):
                    continue
                attrs, detail = softmax_formats(float(lo.min()), float(hi.max()), f, lo.shape[-1], self.o)
                n.op, n.attrs = "softmax_table", {**attrs, "axis": -1}
                self.decide(n, "softmax", "softmax_table (hls4ml's table softmax, hgq2 QSoftmax)", True, **detail)
            else:
                attrs, detail = lut_formats(n.op, float(lo.min()), float(hi.max()), f, self.o)
                n.attrs = {"fn": n.op, **attrs}
                n.op = "lut"
                self.decide(n, n.attrs["fn"], "lut (hgq2 QUnaryFunctionLUT)", True, **detail)

    def split_selu(self, n: Node) -> None:
        """selu(x) = scale * relu(x) + selu(min(x, 0)), min(x, 0) = x - relu(x): the linear side a rounded scale (its output
        quantized as in 5), the exponential side a table of the non-positive part, whose input
        saturates like sigmoid's (one table over the whole range would get few fraction bits, and
        float32 and float64 round scale * x differently on many of its entries)."""
        x, y = n.inputs[0], n.output
        scale = round_bits(np.array([SELU_SCALE]), self.o.weight_bits)
        pos = Node("relu", self.fresh(f"{n.name}_pos"), [x], self.fresh(f"{y}_pos"))
        lin = Node(
            "scale_shift",
            self.fresh(f"{n.name}_lin"),
            [pos.output],
            self.fresh(f"{y}_lin"),
            {},
            {"scale": scale, "shift": np.zeros(1)},
        )
        # min(x, 0) as x - relu(x): a negation chain (-relu(-x)) gives da4ml a negative-factor table
        # input that its interpreter indexes out of bounds (da4ml 0.5.2)
        neg = Node("sub", self.fresh(f"{n.name}_min0"), [x, pos.output], self.fresh(f"{y}_min0"))
        table = Node("selu", self.fresh(f"{n.name}_exp"), [neg.output], self.fresh(f"{y}_exp"), dict(n.attrs))
        add = Node("add", n.name, [lin.output, table.output], y)
        i = self.g.nodes.index(n)
        self.g.nodes[i : i + 1] = [pos, lin, neg, table, add]
        self.add_quant(lin.output, lin)
        self.decide(n, "selu", f"scale {scale[0]:.10g} * relu(x) + table of selu(min(x, 0))", True)
        b, grids = self.facts()
        # the table's input is min(x, 0): x's lower bound, at most 0 (interval arithmetic on x - relu(x)
        # is looser)
        lo, hi = b[x]
        attrs, detail = lut_formats("selu", float(lo.min()), min(float(hi.max()), 0.0), grids[table.inputs[0]], self.o)
        table.attrs, table.op = {"fn": "selu", **attrs}, "lut"
        self.decide(table, "selu", "lut (hgq2 QUnaryFunctionLUT)", True, **detail)

    # -- cleanup: dyadic scale_shift into its dense/conv

    def fold_dyadic(self) -> None:
        for s in [n for n in self.g.nodes if n.op == "scale_shift"]:
            d = self.producer(s.inputs[0])
            if d is None or d.op not in ("dense", "conv") or self.sole(d.output) is not s:
                continue
            trial = copy.deepcopy(d)
            _fold(trial, s.weights["scale"], s.weights["shift"])
            if all(dyadic(w) for w in trial.weights.values()):
                d.weights = trial.weights
                self.remove(s)
                self.decide(s, "scale_shift", f"folded exactly into {d.op} {d.name!r}", False)

    # -- 9. checks

    def check(self) -> None:
        b, grids = self.facts()
        problems = []
        for n in self.g.nodes:
            f = grids[n.output]
            if f is None:
                problems.append(
                    f"node {n.name!r} ({n.op}): its output is on no fixed-point grid"
                    + (" (an average over windows of several sizes)" if n.op == "avgpool" else "")
                    + (f" (softmax over axis {n.attrs.get('axis')}: only the last axis)" if n.op == "softmax" else "")
                )
                continue
            lo, hi = b[n.output]
            bits = int(np.any(lo < 0)) + needed_integer(float(lo.min()), float(hi.max()), f, bool(np.any(lo < 0))) + f
            if bits > MAX_EXACT_BITS:
                problems.append(f"node {n.name!r} ({n.op}): its output needs {bits} bits (> {MAX_EXACT_BITS})")
        if problems:
            raise UnsupportedError(
                "the precision policy cannot make the graph fixed point:\n  - " + "\n  - ".join(problems),
                "quantize these outputs in the source, or lower act_frac_bits / weight_bits; averages need "
                "equal windows (count_pad, or no padding); softmax runs over the last axis",
            )


def _fold(d: Node, scale: np.ndarray, shift: np.ndarray) -> None:
    """d's output times scale plus shift, per output channel, into d's weights (float64)."""
    scale, shift = np.asarray(scale, np.float64), np.asarray(shift, np.float64)
    d.weights["kernel"] = d.weights["kernel"] * scale
    bias = d.weights.get("bias", np.zeros(d.weights["kernel"].shape[-1]))
    d.weights["bias"] = bias * scale + shift
