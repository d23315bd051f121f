"""Reading an ONNX/QONNX file safely, and the version rules: what `onnx_front` reads is always a
normalised copy that onnxruntime and qonnx's executor also run (the reference level).

- Bad files are one `SchemaError` each, before anything is written: bytes that are not an ONNX
  model, a truncated file (its graph is cut short), an external-data reference that points outside
  the model's folder (checked before any data is read: no absolute paths, no `..`, no symlink out)
  or to a missing file.
- Opsets below `MIN_OPSET` are converted with `onnx.version_converter` to `CONVERT_TO` (said in the
  notes); IR versions above `MAX_IR_VERSION` and opsets above `MAX_OPSET` are capped (every op read
  here is unchanged since); the `finn.custom_op.general` domain is renamed to qonnx's (the same
  ops, and the name qonnx's executor resolves).
- Unknown domains and ops are one `UnsupportedError` listing every offending node with the nearest
  supported alternative (`check_ops`).
- Constant subgraphs are evaluated as qonnx's executor evaluates them (`fold`): standard ops by
  onnxruntime one node at a time, QONNX quantizers by qonnx's own functions, in the file's dtypes.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.errors import SchemaError, UnsupportedError
from trigger_ml.interop import limits

log = logging.getLogger(__name__)

QONNX_DOMAIN = "qonnx.custom_op.general"
QONNX_DOMAINS = (QONNX_DOMAIN, "finn.custom_op.general", "onnx.brevitas")
STD_DOMAINS = ("", "ai.onnx")
MIN_OPSET = 9  # the oldest semantics read directly (peer files are opset 9)
CONVERT_TO = 13
MAX_IR_VERSION = 10  # onnxruntime and qonnx's cleanup accept it; every op we read is unchanged since
MAX_OPSET = 21

# ops on the data path (computed from the graph input); constants may use any standard op
DYNAMIC_OPS = (
    "Identity", "Dropout", "Cast", "Relu", "Selu", "Sigmoid", "Tanh", "Softmax", "Clip", "Add", "Sub", "Mul",
    "Div", "Neg", "Pow", "Max", "MatMul", "Gemm", "Conv", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "BatchNormalization", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Concat",
    "Pad", "Shape",
)  # fmt: skip
QONNX_OPS = ("Quant", "BipolarQuant", "Trunc", "MultiThreshold")
HINTS = {
    "LeakyRelu": "Relu",
    "PRelu": "Relu",
    "Elu": "Selu",
    "HardSigmoid": "Sigmoid",
    "HardSwish": "Relu",
    "LogSoftmax": "Softmax",
    "ConvTranspose": "Conv",
    "ReduceMean": "GlobalAveragePool",
    "ReduceMax": "GlobalMaxPool",
    "Einsum": "MatMul",
    "Min": "Max",
    "Sum": "Add",
    "IntQuant": "Quant",
    "FloatQuant": "Quant (integer)",
    "QuantizeLinear": "Quant (QONNX)",
    "DequantizeLinear": "Quant (QONNX)",
    "QuantAvgPool2d": "AveragePool then Trunc",
}


class Refuse(Exception):
    """A node the reader cannot take: the message says why (collected, raised once)."""


@dataclass(frozen=True)
class Tensor:
    """An ONNX tensor while reading: its IR tensor, ONNX shape (batch 1 first) and `perm` (IR axis j
    holds ONNX axis perm[j], 1-based: the batch axis is not in the IR)."""

    name: str
    shape: tuple[int, ...]
    perm: tuple[int, ...]


def all_pow2(v: Any) -> bool:
    """Every element of v is a power of two (or zero), up to sign."""
    v = np.abs(np.asarray(v, np.float64))
    m, _ = np.frexp(v)
    return bool(np.all((m == 0.5) | (v == 0)))


def read_proto(path: str | Path):
    """The model in `path` without its external data (the file's size checked against the limit
    first), or one SchemaError."""
    import onnx

    path = Path(path)
    limits.Budget(path).file(path)
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise SchemaError(
            f"{path}: cannot read it as ONNX ({type(exc).__name__}: {str(exc).strip()[:200]})",
            "give an .onnx file written by an ONNX exporter (the file may be truncated or not ONNX at all)",
        ) from exc


def load(path: str | Path):
    """The model in `path` with its external data (checked first), or one SchemaError. Every
    tensor's declared size is added up against `limits` and checked against the data it holds
    before any of it is read."""
    path = Path(path)
    model = read_proto(path)
    _check_structure(model, path)
    _check_tensors(model, path, limits.Budget(path))  # in-file and external tensors, by their dims
    _load_external(model, path.parent, path)
    return model


_SUB_BYTE = ("INT4", "UINT4", "FLOAT4E2M1")  # two elements per byte


def _declared(t) -> tuple[int, int]:
    """(elements, bytes) of a TensorProto by its dims and type."""
    from onnx import TensorProto, helper

    n = limits.elements(t.dims)
    kind = TensorProto.DataType.Name(t.data_type) if t.data_type in TensorProto.DataType.values() else ""
    if kind in _SUB_BYTE:
        return n, (n + 1) // 2
    if kind == "STRING":
        return n, sum(len(v) for v in t.string_data)
    try:
        return n, n * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    except (KeyError, ValueError, TypeError):
        raise SchemaError(f"tensor {t.name!r}: unknown data type {t.data_type}") from None


def _held(t, n: int, nbytes: int) -> tuple[int, int] | None:
    """(values held, values needed) of an in-file tensor, None when it holds what its dims say."""
    from onnx import TensorProto, helper

    if t.HasField("raw_data"):
        return None if len(t.raw_data) == nbytes else (len(t.raw_data), nbytes)
    if t.data_type == TensorProto.STRING:
        return None if len(t.string_data) == n else (len(t.string_data), n)
    field = helper.tensor_dtype_to_field(t.data_type)
    kind = TensorProto.DataType.Name(t.data_type)
    need = 2 * n if kind.startswith("COMPLEX") else (n + 1) // 2 if kind in _SUB_BYTE else n
    have = len(getattr(t, field))
    return None if have == need else (have, need)


def _check_tensors(model, path: Path, budget: limits.Budget) -> None:
    """Every tensor's dims are sizes, its declared bytes fit the budget, and an in-file tensor holds
    exactly the values its dims need (a short raw_data is a damaged file, not an internal error)."""
    from onnx import TensorProto

    short = []
    for t in _tensors(model.graph):
        if any(d < 0 for d in t.dims):
            raise SchemaError(
                f"{path}: tensor {t.name!r} has a negative dimension {list(t.dims)}", "re-export the model"
            )
        try:
            n, nbytes = _declared(t)
        except SchemaError as exc:
            raise SchemaError(f"{path}: {exc.what}", "re-export the model") from None
        budget.add(nbytes, f"tensor {t.name!r} ({list(t.dims)}, {n:,} values)")
        if t.data_location != TensorProto.EXTERNAL and (why := _held(t, n, nbytes)) is not None:
            short.append(
                f"tensor {t.name!r} of shape {list(t.dims)} holds {why[0]:,} values or bytes, needs {why[1]:,}"
            )
    if short:
        raise SchemaError(
            f"{path}: tensor data does not match its shape (a truncated or damaged file): " + "; ".join(short[:5]),
            "re-export the model",
        )


def _check_structure(model, path: Path) -> None:
    """Bytes that parse as a protobuf but are no model, or a graph cut short."""
    g = model.graph
    if not g.node or not g.output or not (g.input or g.initializer):
        raise SchemaError(f"{path}: not an ONNX model (no graph: {len(g.node)} nodes, {len(g.output)} outputs)")
    known = {i.name for i in g.input} | {t.name for t in g.initializer} | {""}
    missing = []
    for n in g.node:
        missing += [f"node {n.name or n.op_type!r} reads {i!r}" for i in n.input if i not in known]
        known.update(n.output)
    missing += [f"output {o.name!r} is not produced" for o in g.output if o.name not in known]
    if missing:
        raise SchemaError(
            f"{path}: the graph is incomplete (truncated or not topologically sorted): " + "; ".join(missing[:5]),
            "re-export the model",
        )


def _tensors(graph):
    """Every TensorProto of a graph: initializers and attribute tensors, subgraphs included."""
    yield from graph.initializer
    for n in graph.node:
        for a in n.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("g"):
                yield from _tensors(a.g)
            for sub in a.graphs:
                yield from _tensors(sub)


def _load_external(model, folder: Path, path: Path) -> None:
    """External data only from files inside the model's folder (resolved, symlinks followed)."""
    from onnx import TensorProto
    from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_tensor

    external = [t for t in _tensors(model.graph) if t.data_location == TensorProto.EXTERNAL]
    if not external:
        return
    base = folder.resolve()
    bad = []
    for t in external:
        try:
            loc = ExternalDataInfo(t).location
        except ValueError as exc:  # onnx's own bounds check of offset / length
            raise SchemaError(f"{path}: external data of {t.name!r} refused ({exc})", "re-export the model") from exc
        target = (base / loc).resolve()
        if not loc or os.path.isabs(loc) or ".." in Path(loc).parts or not target.is_relative_to(base):
            bad.append(f"tensor {t.name!r}: {loc!r} is outside the model's folder")
        elif not target.is_file():
            bad.append(f"tensor {t.name!r}: {loc!r} does not exist")
    if bad:
        raise SchemaError(
            f"{path}: external data refused: " + "; ".join(bad[:5]),
            "keep the model's external data files beside it (relative names, no '..')",
        )
    for t in external:  # the declared bytes are in the budget already (`_check_tensors`)
        info = ExternalDataInfo(t)
        target = (base / info.location).resolve()
        size, need = target.stat().st_size, _declared(t)[1]
        offset = int(info.offset or 0)
        if info.length is not None and int(info.length) != need or offset + need > size:
            bad.append(
                f"tensor {t.name!r} of shape {list(t.dims)} needs {need:,} bytes at offset {offset:,} of "
                f"{info.location!r} ({size:,} bytes"
                + (f", length {int(info.length):,} declared)" if info.length is not None else ")")
            )
    if bad:
        raise SchemaError(
            f"{path}: external data does not match its tensors (a truncated or damaged file): " + "; ".join(bad[:5]),
            "re-export the model with its external data files",
        )
    for t in external:
        try:
            load_external_data_for_tensor(t, str(base))
        except Exception as exc:
            raise SchemaError(f"{path}: external data of {t.name!r} unreadable ({exc})") from exc
        t.data_location = TensorProto.DEFAULT
        del t.external_data[:]


def default_opset(model) -> int:
    return max((o.version for o in model.opset_import if o.domain in STD_DOMAINS), default=1)


def normalise(model) -> tuple[Any, list[str]]:
    """A copy the executors accept, and notes saying what changed."""
    import onnx

    m = onnx.ModelProto.FromString(model.SerializeToString())
    notes = []
    opset = default_opset(m)
    if opset < MIN_OPSET:
        std = [n for n in m.graph.node if n.domain in STD_DOMAINS]
        try:
            conv = onnx.version_converter.convert_version(m, CONVERT_TO)
        except Exception as exc:
            raise UnsupportedError(
                f"opset {opset} is older than {MIN_OPSET} and onnx.version_converter cannot convert it ({exc})",
                f"re-export with opset {MIN_OPSET} or later",
            ) from exc
        if len([n for n in conv.graph.node if n.domain in STD_DOMAINS]) == 0 and std:
            raise UnsupportedError(f"opset {opset}: onnx.version_converter dropped the graph's nodes")
        m = conv
        notes.append(f"opset {opset} converted to {CONVERT_TO} with onnx.version_converter")
    if m.ir_version > MAX_IR_VERSION:
        notes.append(f"IR version {m.ir_version} read as {MAX_IR_VERSION} (the ops used are unchanged)")
        m.ir_version = MAX_IR_VERSION
    for op in m.opset_import:
        if op.domain in STD_DOMAINS and op.version > MAX_OPSET:
            notes.append(f"opset {op.version} read as {MAX_OPSET} (the ops used are unchanged)")
            op.version = MAX_OPSET
    renamed = False
    for n in m.graph.node:
        if n.domain == "finn.custom_op.general":
            n.domain, renamed = QONNX_DOMAIN, True
    if renamed:
        notes.append("domain finn.custom_op.general read as qonnx.custom_op.general (the same ops)")
    domains = {n.domain for n in m.graph.node if n.domain in QONNX_DOMAINS}
    have = {o.domain for o in m.opset_import}
    for d in sorted(domains - have):
        m.opset_import.append(onnx.helper.make_opsetid(d, 1))
    for o in list(m.opset_import):
        if o.domain == "finn.custom_op.general":
            m.opset_import.remove(o)
    for n in notes:
        log.info("%s", n)
    return m, notes


def is_qonnx(model) -> bool:
    return any(n.domain in QONNX_DOMAINS for n in model.graph.node)


def nearest(op: str) -> str:
    if op in HINTS:
        return HINTS[op]
    close = difflib.get_close_matches(op, DYNAMIC_OPS + QONNX_OPS, n=1, cutoff=0.5)
    return close[0] if close else "none"


def check_ops(model, dynamic: set[str]) -> None:
    """One UnsupportedError listing every node of an unknown domain, or an op the data path cannot
    take (`dynamic`: the tensors computed from a graph input, directly or not)."""
    bad = []
    for n in model.graph.node:
        where = f"node {n.name or n.output[0]!r} ({n.domain or 'ai.onnx'}:{n.op_type})"
        if n.domain in QONNX_DOMAINS:
            if n.op_type not in QONNX_OPS:
                bad.append(f"{where}: unknown QONNX op; nearest supported: {nearest(n.op_type)}")
        elif n.domain not in STD_DOMAINS:
            bad.append(f"{where}: unknown domain {n.domain!r}; supported: ai.onnx, {', '.join(QONNX_DOMAINS)}")
        elif n.op_type == "Constant" or not any(o in dynamic for o in n.output):
            continue
        elif n.op_type not in DYNAMIC_OPS:
            bad.append(f"{where}: not supported on the data path; nearest supported: {nearest(n.op_type)}")
    if bad:
        raise UnsupportedError(
            f"cannot import the graph: {len(bad)} unsupported node(s):\n  - " + "\n  - ".join(bad),
            "replace them by the nearest supported op, or fold them into constants before exporting",
        )


def attrs(node) -> dict[str, Any]:
    import onnx

    out = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in out.items()}


# ----------------------------------------------------------------------------- constant folding, bounded

MAX_FOLD_FLOPS = 10**9  # multiply-adds of one constant MatMul / Gemm / Conv


def _shapes(values: list[np.ndarray | None]) -> list[tuple[int, ...]]:
    return [np.shape(v) for v in values if v is not None]


def _broadcast(values, a) -> int:
    return limits.elements(np.broadcast_shapes(*_shapes(values)) if _shapes(values) else ())


def _ints(v) -> list[int]:
    return [int(x) for x in np.asarray(v).reshape(-1)]


def _same_total(values, a) -> int:
    return sum(int(np.size(v)) for v in values if v is not None)


def _gather(values, a) -> int:
    data, idx = values[0], values[1]
    axis = a.get("axis", 0)
    return int(np.size(data)) // max(1, np.shape(data)[axis] if np.ndim(data) else 1) * int(np.size(idx))


def _expand(values, a) -> int:
    return limits.elements(np.broadcast_shapes(np.shape(values[0]), tuple(max(d, 0) for d in _ints(values[1]))))


def _pad(values, a) -> int:
    pads = _ints(values[1]) if len(values) > 1 and values[1] is not None else list(a.get("pads", []))
    shape, r = np.shape(values[0]), np.ndim(values[0])
    if len(pads) != 2 * r:
        return int(np.size(values[0]))
    return limits.elements([max(0, d + pads[j] + pads[j + r]) for j, d in enumerate(shape)])


def _range(values, a) -> int:
    start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in values[:3])
    return 0 if delta == 0 else max(0, math.ceil((limit - start) / delta))


def _matmul(values, a) -> int:
    x, w = np.shape(values[0]), np.shape(values[1])
    if a.get("transA") and len(x) == 2:
        x = x[::-1]
    if a.get("transB") and len(w) == 2:
        w = w[::-1]
    out = np.broadcast_shapes(x[:-2], w[:-2]) + (x[-2] if len(x) > 1 else 1, w[-1] if len(w) > 1 else 1)
    if limits.elements(out) * (x[-1] if x else 1) > MAX_FOLD_FLOPS:
        raise limits.LimitError(
            f"a constant product of shapes {list(x)} and {list(w)} takes more than {MAX_FOLD_FLOPS:.0e} "
            "multiply-adds to compute at import",
            "fold it into an initializer before exporting",
        )
    return limits.elements(out)


# the ops evaluated on constants at import, each with the element count of its outputs computed
# from its inputs before it runs (shape errors are onnxruntime's to report); no control flow
# (Loop, Scan, If), no random ops, nothing whose size or time the inputs do not bound
FOLDABLE: dict[str, Callable[[list, dict], int]] = {
    **dict.fromkeys(
        ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Mod", "Equal", "Less", "Greater",
         "LessOrEqual", "GreaterOrEqual", "Where", "And", "Or", "Xor", "Not", "Neg", "Abs", "Sqrt", "Exp", "Log",
         "Relu", "Sigmoid", "Tanh", "Clip", "Cast", "CastLike", "Identity", "Floor", "Ceil", "Round", "Sign",
         "Reciprocal", "Erf", "Dropout", "Softmax", "LeakyRelu", "BatchNormalization", "IsNaN", "IsInf",
         "Quant", "BipolarQuant", "Trunc", "MultiThreshold"),
        _broadcast,
    ),
    **dict.fromkeys(
        ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Slice", "Split", "Shape", "Size",
         "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ArgMax", "ArgMin", "GatherElements",
         "Constant", "NonZero", "DequantizeLinear", "QuantizeLinear"),
        _same_total,
    ),
    "Gather": _gather,
    "ConstantOfShape": lambda v, a: limits.elements(tuple(max(d, 0) for d in _ints(v[0]))) if v else 1,
    "Expand": _expand,
    "Tile": lambda v, a: int(np.size(v[0])) * limits.elements(tuple(max(d, 0) for d in _ints(v[1]))),
    "Range": _range,
    "Pad": _pad,
    "MatMul": _matmul,
    "Gemm": _matmul,
}  # fmt: skip


def check_foldable(model, dynamic: set[str], where: str) -> None:
    """Every standard node computed from constants only is of an op in `FOLDABLE` (other domains:
    `check_ops`), checked before any other refusal: no later path (stock hls4ml's converter) runs
    such a node either."""
    for n in model.graph.node:
        if n.domain in STD_DOMAINS and n.op_type not in FOLDABLE and not any(o in dynamic for o in n.output):
            fold_size(n, [], where)


def fold_size(node, values: list[np.ndarray | None], where: str) -> int:
    """The element count of a constant node's outputs, computed before it runs; a LimitError for an
    op that is not evaluated at import (control flow, random, unbounded)."""
    if node.op_type not in FOLDABLE:
        raise limits.LimitError(
            f"{where}: constant node {node.name or node.output[0]!r} ({node.op_type}) would have to run at import; "
            "control flow (Loop, Scan, If), random ops and ops whose size or time the inputs do not bound are "
            "never run on a model's constants",
            "fold the constant subgraph into initializers before exporting (on a machine you trust), "
            "or remove it from the model",
        )
    try:
        return FOLDABLE[node.op_type](values, attrs(node))
    except limits.LimitError as exc:
        raise limits.LimitError(f"{where}: node {node.name or node.output[0]!r}: {exc.what}", exc.fix) from None
    except (ValueError, TypeError, IndexError, OverflowError):
        return 0  # shapes that do not fit: onnxruntime says why


def fold(node, values: list[np.ndarray | None], opset: int) -> list[np.ndarray]:
    """The outputs of a node whose inputs are all constant, computed as qonnx's executor does."""
    if node.domain in QONNX_DOMAINS:
        return [_fold_qonnx(node, values)]
    if node.op_type == "Constant":
        import onnx

        a = node.attribute[0]
        if a.name == "value":
            return [onnx.numpy_helper.to_array(a.t)]
        return [np.asarray(onnx.helper.get_attribute_value(a))]
    return _fold_ort(node, values, opset)


def _fold_qonnx(node, v: list[np.ndarray | None]) -> np.ndarray:
    from qonnx.custom_op.general.bipolar_quant import binary_quant
    from qonnx.custom_op.general.multithreshold import multithreshold
    from qonnx.custom_op.general.quant import quant
    from qonnx.custom_op.general.trunc import trunc_v1, trunc_v2

    a = attrs(node)
    if node.op_type == "Quant":
        return quant(v[0], v[1], v[2], v[3], a["signed"], a["narrow"], a.get("rounding_mode", "ROUND"))
    if node.op_type == "BipolarQuant":
        return binary_quant(v[0], v[1])
    if node.op_type == "Trunc" and len(v) == 5:
        return trunc_v1(*v, a.get("rounding_mode", "FLOOR"))
    if node.op_type == "Trunc":
        x, s, z, b_in, s_out, b_out = v
        return trunc_v2(x, s, z, b_in, a.get("narrow", 0), a.get("signed", 1), s_out, b_out, a.get("rounding_mode"))
    if node.op_type == "MultiThreshold":
        return multithreshold(v[0], v[1], a.get("out_scale"), a.get("out_bias"))
    raise UnsupportedError(f"constant QONNX op {node.op_type}")


def _fold_ort(node, values: list[np.ndarray | None], opset: int) -> list[np.ndarray]:
    import onnx
    import onnxruntime as ort
    from onnx import helper

    feed = {n: v for n, v in zip(node.input, values) if n and v is not None}
    inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in feed.items()
    ]
    outs = [o for o in node.output if o]
    g = helper.make_graph([node], "fold", inputs, [helper.make_empty_tensor_value_info(o) for o in outs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = MAX_IR_VERSION
    m = onnx.shape_inference.infer_shapes(m)
    typed = {vi.name: vi for vi in list(m.graph.output) + list(m.graph.value_info) if vi.type.HasField("tensor_type")}
    del m.graph.output[:]
    m.graph.output.extend(
        [typed.get(o) or helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outs]
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return [np.asarray(r) for r in sess.run(outs, feed)]
