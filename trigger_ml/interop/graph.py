"""Read a (Q)ONNX graph into a short list of exact steps: `Dense`, `Relu`, `Quant`, `Bipolar`.

The graph must be one chain from its single input to its single output (an MLP: MatMul/Gemm
with constant weights, Add/Sub of constant biases, Relu, power-of-two Mul, Flatten/Reshape to
2-D, Identity) with QONNX quantizers on the way (`Quant`, `BipolarQuant`, `Trunc`, domain
`qonnx.custom_op.general`). Constant subgraphs (a weight and its Quant node, a Transpose of a
weight) are evaluated here with qonnx's own reference functions, so a quantized weight is the
exact value qonnx's executor uses.

QONNX semantics kept exactly (qonnx.custom_op.general.intquant): Quant with scale 2**-f and zero
point 0 is the fixed-point format of `bitwidth` bits (sign included when signed) with `f`
fractional bits, clipped (SAT; narrow signed: SAT_SYM) and rounded by `rounding_mode` (ROUND is
numpy's round half to even: RND_CONV; FLOOR: TRN). Anything else (a non-power-of-two or
per-channel activation scale, a zero point, narrow unsigned, another rounding mode, an op outside
the list) is collected, and `read_graph` raises one `UnsupportedError` listing all of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from trigger_ml.errors import UnsupportedError
from trigger_ml.fixed import Fixed

log = logging.getLogger(__name__)
QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas")
MAX_IR_VERSION = 10  # onnxruntime and qonnx's cleanup accept it; every op we read is unchanged since
MAX_OPSET = 21
TRUNC_I = 40  # a Trunc's integer bits before lowering sets them from the reachable range
ROUNDING = {"ROUND": "RND_CONV", "HALF_EVEN": "RND_CONV", "FLOOR": "TRN"}
SUPPORTED_OPS = (
    "MatMul",
    "Gemm",
    "Add",
    "Sub",
    "Mul",
    "Relu",
    "Flatten",
    "Reshape",
    "Identity",
    "Quant",
    "BipolarQuant",
    "Trunc",
)


@dataclass
class Dense:
    w: np.ndarray  # (n_in, n_out), float64
    b: np.ndarray  # (n_out,)
    name: str = ""


@dataclass(frozen=True)
class Relu:
    name: str = ""


@dataclass(frozen=True)
class Quant:
    fmt: Fixed
    name: str = ""
    exact_grid: int | None = None  # Trunc: its input must already lie on 2**-exact_grid (qonnx rounds it first)


@dataclass(frozen=True)
class Bipolar:
    """y = +scale where x >= 0 else -scale (qonnx's BipolarQuant, and 1-bit signed Quant)."""

    scale: float
    name: str = ""


Step = Dense | Relu | Quant | Bipolar


@dataclass
class Graph:
    input_name: str
    output_name: str
    n_in: int
    steps: list[Step]


def normalise(model):
    """A copy the executors accept: IR version and default opset capped (all ops we read are
    unchanged since), so onnx 1.23's IR 14 files run on onnxruntime and qonnx's cleanup."""
    import onnx

    m = onnx.ModelProto.FromString(model.SerializeToString())
    if m.ir_version > MAX_IR_VERSION:
        log.info("IR version %d -> %d (the ops used are unchanged)", m.ir_version, MAX_IR_VERSION)
        m.ir_version = MAX_IR_VERSION
    for op in m.opset_import:
        if op.domain in ("", "ai.onnx") and op.version > MAX_OPSET:
            op.version = MAX_OPSET
    return m


def is_qonnx(model) -> bool:
    return any(n.domain in QONNX_DOMAINS for n in model.graph.node)


def _attrs(node) -> dict[str, Any]:
    import onnx

    out = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in out.items()}


def _pow2_exponent(v: np.ndarray) -> int | None:
    """k with v == 2**k for a scalar (or all-equal) positive v, else None."""
    v = np.unique(np.asarray(v, np.float64))
    if len(v) != 1 or v[0] <= 0:
        return None
    m, e = np.frexp(v[0])
    return int(e - 1) if m == 0.5 else None


def quant_fmt(
    scale, zeropt, bitwidth, signed: int, narrow: int, rounding: str, where: str, problems: list[str]
) -> Fixed | None:
    """The hgq2 format of a QONNX Quant, or None with the reason appended to problems."""
    e = _pow2_exponent(scale)
    bits = np.unique(np.asarray(bitwidth))
    bad = []
    if e is None:
        bad.append(f"scale {np.asarray(scale).ravel()[:4].tolist()} is not one power of two")
    if np.any(np.asarray(zeropt) != 0):
        bad.append("non-zero zero point")
    if len(bits) != 1 or bits[0] != int(bits[0]) or bits[0] < 1:
        bad.append(f"bit width {bits.tolist()}")
    if narrow and not signed:
        bad.append("narrow unsigned range")
    if rounding.upper() not in ROUNDING:
        bad.append(f"rounding_mode {rounding} (supported: {sorted(ROUNDING)})")
    if bad:
        problems.append(f"{where}: {', '.join(bad)}")
        return None
    f = -int(e)
    b = int(bits[0])
    return Fixed(
        bool(signed),
        b - int(bool(signed)) - f,
        f,
        ROUNDING[rounding.upper()],
        "SAT_SYM" if narrow and signed else "SAT",
    )


def _const_eval(node, vals: list[np.ndarray], attrs: dict[str, Any]) -> np.ndarray | None:
    """Evaluate a node whose inputs are all constant (weights and their quantizers)."""
    from qonnx.custom_op.general.bipolar_quant import binary_quant
    from qonnx.custom_op.general.quant import quant

    op = node.op_type
    if op == "Quant":
        return quant(
            vals[0],
            vals[1],
            vals[2],
            vals[3],
            attrs.get("signed", 1),
            attrs.get("narrow", 0),
            attrs.get("rounding_mode", "ROUND"),
        )
    if op == "BipolarQuant":
        return binary_quant(vals[0], vals[1])
    if op == "Transpose":
        return np.transpose(vals[0], attrs.get("perm"))
    if op == "Identity":
        return vals[0]
    if op in ("Mul", "Add", "Sub", "Div"):
        return {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}[op](vals[0], vals[1])
    if op == "Neg":
        return -vals[0]
    if op == "Reshape":
        return np.reshape(vals[0], vals[1].astype(np.int64))
    return None


def read_graph(model) -> Graph:
    """The chain of steps of an ONNX model (see the module docstring); one error lists every problem."""
    from onnx import numpy_helper

    g = model.graph
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1 or len(g.output) != 1:
        raise UnsupportedError(
            f"the graph has {len(inputs)} inputs and {len(g.output)} outputs",
            "import supports single-input, single-output chains (MLPs)",
        )
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 2 or dims[1] < 1:
        raise UnsupportedError(f"input {inputs[0].name!r} has shape {dims}", "import supports (batch, features) inputs")
    cur = inputs[0].name
    steps: list[Step] = []
    problems: list[str] = []
    for node in g.node:
        where = f"{node.op_type} node {node.name or node.output[0]!r}"
        attrs = _attrs(node)
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(attrs["value"]).astype(np.float64)
            continue
        ins = [i for i in node.input if i]
        if all(i in consts for i in ins):
            v = _const_eval(node, [consts[i] for i in ins], attrs)
            if v is None:
                problems.append(f"{where}: constant op {node.op_type} not supported")
                v = np.zeros(0)
            consts[node.output[0]] = np.asarray(v, np.float64)
            continue
        if cur not in ins:
            problems.append(f"{where}: not on the input's chain (branches are not supported)")
            continue
        others = [consts.get(i) for i in ins if i != cur]
        if any(o is None for o in others):
            problems.append(f"{where}: joins two computed tensors (branches are not supported)")
            continue
        _dynamic(node, attrs, ins.index(cur), others, steps, problems, where)
        cur = node.output[0]
    if cur != g.output[0].name:
        problems.append(f"the chain ends at {cur!r}, not at the graph output {g.output[0].name!r}")
    if problems:
        raise UnsupportedError(
            "cannot import the graph:\n  - " + "\n  - ".join(problems),
            f"supported ops: {', '.join(SUPPORTED_OPS)} (QONNX quantizers with power-of-two "
            "scales and zero point 0); see README, Import and export",
        )
    return Graph(inputs[0].name, g.output[0].name, dims[1], steps)


def _dynamic(
    node, attrs: dict[str, Any], pos: int, others: list[np.ndarray], steps: list[Step], problems: list[str], where: str
) -> None:
    op = node.op_type
    last = steps[-1] if steps else None
    name = node.name or node.output[0]
    if op == "MatMul" and pos == 0 and others[0].ndim == 2:
        steps.append(Dense(others[0], np.zeros(others[0].shape[1]), name))
    elif op == "Gemm" and pos == 0 and not attrs.get("transA", 0):
        w = others[0].T if attrs.get("transB", 0) else others[0]
        b = others[1] if len(others) > 1 else np.zeros(w.shape[1])
        steps.append(
            Dense(attrs.get("alpha", 1.0) * w, attrs.get("beta", 1.0) * np.broadcast_to(b, (w.shape[1],)), name)
        )
    elif op in ("Add", "Sub") and isinstance(last, Dense) and others[0].size in (1, last.w.shape[1]):
        c = np.broadcast_to(others[0].ravel(), last.b.shape)
        if op == "Sub" and pos == 1:  # c - x
            last.w, last.b = -last.w, c - last.b
        else:
            last.b = last.b + (c if op == "Add" else -c)
    elif op == "Mul" and isinstance(last, Dense) and others[0].size in (1, last.w.shape[1]):
        c = np.broadcast_to(others[0].ravel(), last.b.shape)
        last.w, last.b = last.w * c, last.b * c
    elif op == "Relu":
        steps.append(Relu(name))
    elif op in ("Identity", "Flatten") or (op == "Reshape" and len(others) == 1 and others[0].size == 2):
        pass  # (batch, n) stays (batch, n)
    elif op == "Quant" and pos == 0:
        scale, zeropt, bits = others
        signed = attrs.get("signed", 1)
        if int(np.max(bits)) == 1 and signed:  # qonnx executes a 1-bit signed Quant as bipolar
            e = _pow2_exponent(scale)
            if e is None:
                problems.append(f"{where}: 1-bit scale {np.asarray(scale).ravel()[:4].tolist()} is not a power of two")
            steps.append(Bipolar(2.0 ** (e or 0), name))
            return
        fmt = quant_fmt(
            scale, zeropt, bits, signed, attrs.get("narrow", 0), attrs.get("rounding_mode", "ROUND"), where, problems
        )
        if fmt is not None:
            steps.append(Quant(fmt, name))
    elif op == "BipolarQuant" and pos == 0:
        e = _pow2_exponent(others[0])
        if e is None:
            problems.append(f"{where}: scale {np.asarray(others[0]).ravel()[:4].tolist()} is not a power of two")
        steps.append(Bipolar(2.0 ** (e or 0), name))
    elif op == "Trunc" and pos == 0:
        _trunc(attrs, others, steps, problems, where, name)
    else:
        problems.append(
            f"{where}: {op} not supported here"
            + ("" if op in SUPPORTED_OPS else f" (supported ops: {', '.join(SUPPORTED_OPS)})")
        )


def _trunc(
    attrs: dict[str, Any], others: list[np.ndarray], steps: list[Step], problems: list[str], where: str, name: str
) -> None:
    """qonnx's Trunc. v1 (scale s, zero point, in bits, out bits): floor(round(x / s) / 2**t) * s with
    t = in - out: the preceding Dense rescaled by 2**-t, then a floor onto s. v2 (s, zero point, in
    bits, output scale S, out bits; signed, narrow): clip(floor(round(x / s) * s / S)) * S: a floor
    onto S with the output bit width, saturating. Both need x on the grid s already (checked when
    lowering)."""
    last = steps[-1] if steps else None
    mode = attrs.get("rounding_mode", "FLOOR").upper()
    if mode not in ROUNDING:
        problems.append(f"{where}: rounding_mode {mode}")
        return
    if len(others) == 4:
        scale, zeropt, b_in, b_out = others
        e, t = _pow2_exponent(scale), int(np.max(b_in) - np.max(b_out))
        if e is None or np.any(zeropt != 0) or not isinstance(last, Dense):
            problems.append(f"{where}: needs a power-of-two scale, zero point 0 and a preceding MatMul/Gemm")
            return
        last.w, last.b = last.w * 2.0**-t, last.b * 2.0**-t
        steps.append(Quant(Fixed(True, TRUNC_I, -int(e), ROUNDING[mode], "WRAP"), name, exact_grid=t - int(e)))
    elif len(others) == 5:
        scale, zeropt, _, out_scale, b_out = others
        e, e_out = _pow2_exponent(scale), _pow2_exponent(out_scale)
        if e is None or e_out is None or np.any(zeropt != 0):
            problems.append(f"{where}: needs power-of-two scales and zero point 0")
            return
        fmt = quant_fmt(out_scale, zeropt, b_out, attrs.get("signed", 1), attrs.get("narrow", 0), mode, where, problems)
        if fmt is not None:
            steps.append(Quant(fmt, name, exact_grid=-int(e)))
    else:
        problems.append(f"{where}: Trunc with {len(others) + 1} inputs")
