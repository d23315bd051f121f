"""Lower a chain of exact steps (`graph.Step`) to a Keras 3 model of hgq2 layers with the same
arithmetic, so hls4ml, da4ml and Verilator take it like any trained model.

Each Dense becomes a `QDense` whose weight and bias quantizers are the smallest fixed-point
formats holding the (already quantized) values exactly; the Quant before a Dense becomes that
QDense's input quantizer, a Quant at the end a `Quantizer` layer, a Relu the QDense's activation.
A BipolarQuant (y = s if x >= 0 else -s) on a Dense's output x, whose values lie on a grid of
2**-f with |x 2**f| <= 2**e (interval bounds), becomes u = ufixed<1,1,TRN>(x 2**(f-e) + 1): the
argument lies in [0, 2), so u = [x >= 0] with neither saturation nor wrap (the Dense's weights and
bias scaled by 2**(f-e), plus 1), and the next Dense reads y = s (2u - 1) by taking 2 s W as its kernel and
b - s sum(W) as its bias (a final BipolarQuant gets a diagonal Dense that does this).

Interval bounds from the input format give each quantizer's reachable range: a SAT quantizer that
can never clip becomes WRAP and a rounding that can never round (the input grid is no finer than
the output's) becomes TRN, which da4ml implements (it has no RND_CONV).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trigger_ml.errors import UnsupportedError
from trigger_ml.fixed import Fixed, needed_integer, smallest_holding
from trigger_ml.interop.graph import TRUNC_I, Dense, Graph, Quant, Step

MAX_FRAC = 32
FLOAT32_EXACT_BITS = 24  # qonnx's executor and onnxruntime compute in float32
UNIT = Fixed(False, 1, 0, "TRN", "WRAP")  # u in {0, 1}, from values in [0, 2): never wraps


@dataclass
class Layer:
    w: np.ndarray
    b: np.ndarray
    iq: Fixed
    relu: bool
    name: str


@dataclass
class Lowered:
    input_fmt: Fixed
    layers: list[Layer]
    out_quant: Fixed | None
    acc_bits: list[int]  # significant bits of each accumulator (the float32 exactness bound)

    def describe(self) -> list[dict[str, Any]]:
        """The card's `layers` (a description; the model file is the truth)."""
        return [
            {"type": "dense", "units": int(L.w.shape[1]), "activation": "relu" if L.relu else "linear", "name": L.name}
            for L in self.layers
        ]


def exact_fmt(v: np.ndarray) -> Fixed | None:
    """The smallest format (integer bits >= 0) holding every value of v exactly, or None."""
    return smallest_holding(v, max_frac=MAX_FRAC)


def fmt_range(fmt: Fixed) -> tuple[float, float]:
    return fmt.min_value, fmt.max_value


def _bounds(w: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, c = w * lo[:, None], w * hi[:, None]
    return np.minimum(a, c).sum(0) + b, np.maximum(a, c).sum(0) + b


def _grid(v: np.ndarray) -> int:
    fmt = exact_fmt(v)
    return MAX_FRAC if fmt is None else fmt.frac


def _needed_i(lo: float, hi: float, f: int, k: int) -> int:
    return needed_integer(lo, hi, f, bool(k))


def _tighten(q: Fixed, lo: np.ndarray, hi: np.ndarray, f_in: int) -> Fixed:
    """q with TRN when the value grid is no finer than q's, WRAP when q can never clip."""
    i = _needed_i(float(lo.min()), float(hi.max()), q.frac, q.signed) if q.integer >= TRUNC_I else q.integer
    q = Fixed(q.signed, i, q.frac, q.rounding, q.overflow)
    r_lo, r_hi = fmt_range(q)
    rnd = "TRN" if f_in <= q.frac else q.rounding
    ovf = "WRAP" if (lo.min() >= r_lo and hi.max() <= r_hi) else q.overflow
    return Fixed(q.signed, q.integer, q.frac, rnd, ovf)


def lower(graph: Graph) -> Lowered:
    """The QDense layers of a chain; one UnsupportedError lists every pattern it cannot take."""
    steps, problems = list(graph.steps), []
    if not steps or not isinstance(steps[0], Quant):
        raise UnsupportedError(
            "the graph input is not quantized (no Quant node on it)",
            "export the model with an input quantizer, or import it as float ONNX with --input-format",
        )
    # firmware inputs are words of the input Quant's format: its rounding and clipping happen before
    # the firmware, so the model's input quantizer is the grid itself (TRN, WRAP: identity on it)
    q_in = steps[0].fmt
    in_fmt = Fixed(q_in.signed, q_in.integer, q_in.frac, "TRN", "SAT_SYM" if q_in.overflow == "SAT_SYM" else "WRAP")
    lo, hi = (np.full(graph.n_in, v) for v in fmt_range(in_fmt))
    pos, layers, acc_bits = 1, [], []
    cur_fmt: Fixed | None = in_fmt
    bipolar: float | None = None  # the Dense input is u in {0,1} standing for bipolar * (2u - 1)
    out_quant: Fixed | None = None
    while pos < len(steps):
        d = steps[pos]
        if not isinstance(d, Dense):
            problems.append(f"{type(d).__name__} {d.name!r} follows another activation (expected MatMul/Gemm)")
            break
        acts: list[Step] = []
        pos += 1
        while pos < len(steps) and not isinstance(steps[pos], Dense):
            acts.append(steps[pos])
            pos += 1
        if cur_fmt is None:
            problems.append(f"MatMul/Gemm {d.name!r} reads a value that no Quant node quantized")
            break
        w, b = d.w.astype(np.float64), d.b.astype(np.float64)
        if bipolar is not None:
            w, b = 2 * bipolar * w, b - bipolar * w.sum(0)
        z_lo, z_hi = _bounds(w, b, lo, hi)
        f_acc = max(cur_fmt.frac + _grid(w), _grid(b))
        acc_bits.append(_needed_i(float(z_lo.min()), float(z_hi.max()), f_acc, 1) + f_acc + 1)
        relu, q, bip = _activation(acts, d.name, problems)
        if relu:
            z_lo, z_hi = np.maximum(z_lo, 0), np.maximum(z_hi, 0)
        layer = Layer(w, b, cur_fmt, relu, f"dense_{len(layers)}")
        if bip is not None:  # n = x 2**f is an integer in [-2**e, 2**e): u = floor(n 2**-e + 1) = [x >= 0]
            e = max(_needed_i(float(z_lo.min()), float(z_hi.max()), f_acc, 1) + f_acc, 0)
            layer.w, layer.b = w * 2.0 ** (f_acc - e), b * 2.0 ** (f_acc - e) + 1
            cur_fmt, bipolar = UNIT, bip
            lo, hi = np.zeros_like(z_lo), np.ones_like(z_hi)
        elif q is not None:
            grid = [a.exact_grid for a in acts if isinstance(a, Quant) and a.exact_grid is not None]
            if grid and f_acc > grid[0]:
                problems.append(
                    f"Trunc after {d.name!r}: its input has {f_acc} fractional bits, more than its "
                    f"scale's {grid[0]} (qonnx rounds it onto the scale first)"
                )
            q = _tighten(q, z_lo, z_hi, f_acc)
            cur_fmt, bipolar = q, None
            lo, hi = np.clip(z_lo, *fmt_range(q)), np.clip(z_hi, *fmt_range(q))
        else:
            cur_fmt, bipolar = None, None
        layers.append(layer)
        if pos >= len(steps) and q is not None:
            out_quant = q
    if bipolar is not None and not problems:
        n = layers[-1].w.shape[1]
        layers.append(Layer(2 * bipolar * np.eye(n), np.full(n, -bipolar), UNIT, False, f"dense_{len(layers)}"))
    if not layers and not problems:
        problems.append("no MatMul/Gemm in the graph")
    for L in layers:
        for what, v in (("weights", L.w), ("biases", L.b)):
            if exact_fmt(v) is None:
                problems.append(
                    f"{L.name}: {what} are not on a power-of-two grid of at most {MAX_FRAC} "
                    "fractional bits (a non-power-of-two scale?)"
                )
    if problems:
        raise UnsupportedError(
            "cannot lower the graph to exact fixed point:\n  - " + "\n  - ".join(problems),
            "see README, Import and export, for the supported patterns",
        )
    return Lowered(in_fmt, layers, out_quant, acc_bits)


def _activation(acts: list[Step], name: str, problems: list[str]) -> tuple[bool, Fixed | None, float | None]:
    kinds = [type(a).__name__ for a in acts]
    if kinds in ([], ["Relu"]):
        return bool(acts), None, None
    if kinds == ["Quant"]:
        return False, acts[0].fmt, None
    if kinds == ["Relu", "Quant"]:
        return True, acts[1].fmt, None
    if kinds == ["Quant", "Relu"] and acts[0].fmt.overflow != "WRAP":
        q = acts[0].fmt  # relu(sat(x)) = sat onto the format's non-negative half
        return False, Fixed(False, q.integer, q.frac, q.rounding, "SAT"), None
    if kinds == ["Bipolar"]:
        return False, None, acts[0].scale
    problems.append(
        f"after {name!r}: the sequence {' -> '.join(kinds)} is not supported "
        "(supported: Relu, Quant, Relu -> Quant, Quant -> Relu, BipolarQuant)"
    )
    return False, None, None


def _conf(fmt: Fixed, place: str):
    from hgq.config import QuantizerConfig

    het = {"homogeneous_axis": (0,)} if place == "datalane" else {}
    k, i, f = fmt.kif
    return QuantizerConfig(
        "kif", place, k0=k, i0=i, f0=f, round_mode=fmt.rounding, overflow_mode=fmt.overflow, trainable=False, **het
    )


def build_keras(low: Lowered, n_in: int, name: str):
    """The hgq2 Keras model of a lowered chain, weights set."""
    import keras
    from hgq.layers import QDense, Quantizer

    inp = keras.Input((n_in,), name="x")
    h, dense = inp, []
    for L in low.layers:
        kq, bq = exact_fmt(L.w), exact_fmt(L.b)
        layer = QDense(
            L.w.shape[1],
            activation="relu" if L.relu else None,
            iq_conf=_conf(L.iq, "datalane"),
            kq_conf=_conf(kq, "weight"),
            bq_conf=_conf(bq, "bias"),
            enable_ebops=False,
            name=L.name,
        )
        h = layer(h)
        dense.append((layer, L))
    if low.out_quant is not None:
        h = Quantizer(_conf(low.out_quant, "datalane"), name="output_quant")(h)
    model = keras.Model(inp, h, name=name)
    for layer, L in dense:
        layer.kernel.assign(L.w.astype(np.float32))
        layer.bias.assign(L.b.astype(np.float32))
    return model
