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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.errors import SchemaError, UnsupportedError

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


def load(path: str | Path):
    """The model in `path` with its external data (checked first), or one SchemaError."""
    import onnx

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise SchemaError(
            f"{path}: cannot read it as ONNX ({type(exc).__name__}: {str(exc).strip()[:200]})",
            "give an .onnx file written by an ONNX exporter (the file may be truncated or not ONNX at all)",
        ) from exc
    _check_structure(model, path)
    _load_external(model, path.parent, path)
    return model


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
        loc = ExternalDataInfo(t).location
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
