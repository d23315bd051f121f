"""The ONNX-family front end: an ONNX or QONNX file -> one `ir.Graph` whose `evaluate` reproduces
onnxruntime (float files, in float64) and qonnx's executor (QONNX files, exactly; see
`onnx_exact` for the rules and what is counted where qonnx's own float32 arithmetic decides).

    front = read("model.onnx")      # Front(graph, model, kind, notes, facts)
    y = front.graph.evaluate(to_channels_last(x, front.graph.inputs[0].layout))

Layouts. ONNX tensors are batch first; image tensors are NCHW (NCW). Inside the graph every tensor
is batch-free and channels-last. Each ONNX tensor is tracked as (IR tensor, ONNX shape, `perm`):
IR axis j holds ONNX axis perm[j]. A Transpose in the file only changes `perm` (no op); an op that
needs channels-last (Conv, pools, Pad) or the file's own order (Flatten, Reshape, MatMul on rank
> 2) gets a `transpose` op when the axes that are not of size 1
are out of order (a `reshape` when only size-1 axes move). So a Keras export (NHWC input, Transpose
to NCHW, Conv, Transpose back, Flatten) gets no transpose at all, and a PyTorch NCHW CNN gets one
before its Flatten, folded into the next dense's kernel rows (`onnx_exact.fold_transposes`). Image
inputs read by a Conv/pool/BatchNormalization become channels-last with `Input.layout` "NCHW"
(rank 3: "NCW"): the user keeps feeding the file's layout (`to_channels_last`). Outputs are
returned in the file's order.

Constants (initializers, Constant nodes, Shape of a tensor whose shape is static, and every node
computed from them only: Brevitas' Shape/Gather/Unsqueeze/Concat chain, a weight's Quant or
BipolarQuant, a Transpose of a weight, Pow of constants) are evaluated as qonnx's executor does
(`onnx_load.fold`). The batch axis is axis 0 and of size 1 while reading.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.errors import SchemaError, UnsupportedError
from trigger_ml.interop import ir, limits, onnx_exact, onnx_ops, onnx_quant
from trigger_ml.interop import onnx_load as L
from trigger_ml.interop.onnx_load import Refuse, Tensor
from trigger_ml.interop.onnx_ops import canonical, identity

log = logging.getLogger(__name__)
CHANNEL_OPS = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "Pad")
PASS_OPS = ("Quant", "BipolarQuant", "Mul", "Add", "Sub", "Div", "Relu", "Identity", "Dropout", "Cast", "Clip")


@dataclass
class Front:
    graph: ir.Graph
    model: Any  # the normalised onnx.ModelProto: the reference level runs it
    kind: str  # "qonnx" or "onnx"
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # per threshold: how it was proven (onnx_exact)


def to_channels_last(x: np.ndarray, layout: str) -> np.ndarray:
    """A user's batch (in the file's layout, e.g. NCHW) as the graph's input (channels-last)."""
    x = np.asarray(x)
    if not layout:
        return x
    return np.moveaxis(x, 1, -1)


def to_file_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """The graph's channels-last batch in the file's own layout (what its reference level takes)."""
    x = np.asarray(x)
    return np.moveaxis(x, -1, 1) if layout else x


def import_file(src: str | Path, out: str | Path, **opts: Any) -> dict[str, Any]:
    """The .onnx importer: read the file (every error raised before anything is written), then the
    precision policy, the lowering and the run directory (`interop.imported.import_graph`), with
    the normalised model as the foreign reference level (qonnx's executor for QONNX, exact;
    onnxruntime for float ONNX, fidelity) and kept in the run's `foreign/` folder. What the exact
    path refuses goes to stock hls4ml's converter when that converts it (`stock.onnx_fallback`)."""
    src = Path(src)
    loaded = L.load(src)
    try:
        return _exact(src, read(loaded, origin=str(src)), out, **opts)
    except UnsupportedError as refused:  # stock hls4ml's converter where it converts the file
        from trigger_ml.interop.stock import onnx_fallback

        return onnx_fallback(src, loaded, Path(out), refused, opts.get("input_format"))


def _exact(src: Path, front: Front, out: str | Path, **opts: Any) -> dict[str, Any]:
    import tempfile

    import onnx

    from trigger_ml.interop.imported import import_graph
    from trigger_ml.interop.policy import policy_options
    from trigger_ml.interop.reference import OrtSession, QonnxExecutor

    level = QonnxExecutor(front.model) if front.kind == "qonnx" else OrtSession(front.model)
    summary = {"notes": list(front.notes)} if front.notes else {}
    if front.facts:
        summary["thresholds"] = front.facts
    with tempfile.TemporaryDirectory(prefix=".tml-tmp-onnx-") as tmp:
        kept = Path(tmp) / "model.onnx"  # the normalised model that the reference level runs
        onnx.save(front.model, kept)
        return import_graph(
            front.graph,
            Path(out),
            reference_level=level,
            policy_options=policy_options(**opts),
            foreign_files=[kept],
            summary=summary,
            source=src,
        )


def read(src: str | Path | Any, origin: str | None = None) -> Front:
    """Read an ONNX/QONNX file (or ModelProto; `origin` names its file in errors); one error lists
    every unsupported node."""
    model = L.load(src) if isinstance(src, (str, Path)) else src
    model, notes = L.normalise(model)
    r = Reader(model, notes, origin or (str(src) if isinstance(src, (str, Path)) else "the ONNX model"))
    r.run()
    facts = onnx_exact.finish(r)
    kind = "qonnx" if L.is_qonnx(model) else "onnx"
    g = ir.Graph(
        r.graph_name, r.inputs, r.nodes, r.outputs, source=f"{kind} (opset {L.default_opset(model)})", notes=r.notes
    )
    g.check()
    return Front(g, model, kind, r.notes, facts)


class Reader:
    def __init__(self, model, notes: list[str], origin: str = "the ONNX model") -> None:
        from onnx import numpy_helper

        self.model, self.notes, self.origin_file = model, list(notes), origin
        self.budget = limits.Budget(origin)  # constant-folded outputs and the input, before they exist
        self.opset = L.default_opset(model)
        self.graph_name = model.graph.name or "onnx"
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # weight -> (integer codes, scale) of a Quant
        self.t: dict[str, Tensor] = {}
        self.nodes: list[ir.Node] = []
        self.vals: dict[str, np.ndarray] = {}  # IR tensor -> a batch-1 value (shapes)
        self.inputs: list[ir.Input] = []
        self.outputs: list[str] = []
        self.origin: dict[str, tuple[Any, str, str]] = {}  # IR node -> (ONNX node, its data input, output)
        self.problems: list[str] = []
        self.broken: set[str] = set()

    # ------------------------------------------------------------------ building blocks

    def emit(self, op: str, inputs: list[str], out: str, attrs=None, weights=None, onnx=None) -> str:
        name = out
        k = 1
        while name in self.vals:
            name, k = f"{out}__{k}", k + 1
        n = ir.Node(
            op, name, list(inputs), name, dict(attrs or {}), {k: np.asarray(v) for k, v in (weights or {}).items()}
        )
        try:
            self.vals[name] = ir.OPS[op](n, *(self.vals[i] for i in inputs))
        except (ValueError, IndexError) as exc:
            raise Refuse(f"shapes do not fit ({exc})") from exc
        self.nodes.append(n)
        if onnx is not None:
            self.origin[name] = onnx
        return name

    def ir_shape(self, t: Tensor) -> tuple[int, ...]:
        return tuple(self.vals[t.name].shape[1:])

    def to_perm(self, t: Tensor, perm: tuple[int, ...]) -> Tensor:
        """t with IR axes in the ONNX order `perm`: a reshape when only size-1 axes move, else a transpose."""
        if t.perm == perm:
            return t
        big = [a for a in t.perm if t.shape[a] != 1]
        if big == [a for a in perm if t.shape[a] != 1]:
            out = self.emit("reshape", [t.name], f"{t.name}__r", {"shape": tuple(t.shape[a] for a in perm)})
        else:
            p = tuple(t.perm.index(a) for a in perm)
            out = self.emit("transpose", [t.name], f"{t.name}__t", {"perm": p})
        return Tensor(out, t.shape, perm)

    def const_ir(self, c: np.ndarray, t: Tensor) -> np.ndarray:
        """A constant broadcast against ONNX tensor t, in t's IR order (batch axis dropped)."""
        c = np.asarray(c, np.float64)
        r = len(t.shape)
        if c.ndim > r:
            raise Refuse(f"constant of shape {c.shape} has more axes than the tensor {t.shape}")
        c = c.reshape((1,) * (r - c.ndim) + c.shape)
        if c.shape[0] != 1:
            raise Refuse(f"constant of shape {c.shape} varies along the batch axis")
        if np.broadcast_shapes(c.shape, t.shape) != t.shape:
            raise Refuse(f"constant of shape {c.shape} broadcasts the tensor {t.shape} to a larger shape")
        c = c[0].transpose([a - 1 for a in t.perm])
        while c.ndim and c.shape[0] == 1:
            c = c[0]
        return c

    def data(self, node, i: int = 0) -> Tensor:
        name = node.input[i]
        if name not in self.t:
            raise Refuse(f"input {name!r} is expected to be computed from the graph input")
        return self.t[name]

    def const(self, node, i: int, default=None) -> np.ndarray | None:
        name = node.input[i] if len(node.input) > i else ""
        if not name:
            return default
        if name not in self.consts:
            raise Refuse(f"input {name!r} must be a constant (it is computed from the graph input)")
        return self.consts[name]

    def same(self, node, t: Tensor, out_ir: str) -> None:
        """The node's output: IR tensor out_ir with t's ONNX shape and layout."""
        self.t[node.output[0]] = Tensor(out_ir, t.shape, t.perm)

    def unary(self, node, op: str, attrs=None, weights=None) -> str:
        t = self.data(node)
        out = self.emit(op, [t.name], node.output[0], attrs, weights, (node, node.input[0], node.output[0]))
        self.same(node, t, out)
        return out

    # ------------------------------------------------------------------ the walk

    def run(self) -> None:
        g = self.model.graph
        dynamic = self._dynamic()
        limits.check_layers(
            self.origin_file, sum(any(o in dynamic for o in n.output) for n in g.node), "nodes on the data path"
        )
        L.check_foldable(self.model, dynamic, self.origin_file)
        L.check_ops(self.model, dynamic)
        self._inputs()
        for node in g.node:
            where = f"{node.op_type} node {node.name or node.output[0]!r}"
            if any(i in self.broken for i in node.input):
                self.broken.update(node.output)
                continue
            try:
                if not any(i in self.t for i in node.input):
                    self._fold(node)
                    continue
                if node.op_type == "Shape":
                    self._shape(node)
                    continue
                a = L.attrs(node)
                if node.domain in L.QONNX_DOMAINS:
                    onnx_quant.HANDLERS[node.op_type](self, node, a)
                else:
                    onnx_ops.HANDLERS[node.op_type](self, node, a)
            except Refuse as exc:
                self.problems.append(f"{where}: {exc}")
                self.broken.update(node.output)
        for o in g.output:
            if o.name in self.broken:
                continue
            if o.name not in self.t:
                self.problems.append(f"output {o.name!r} is a constant (not computed from the input)")
                continue
            t = self.to_perm(self.t[o.name], identity(len(self.t[o.name].shape)))
            name = t.name if t.name not in {i.name for i in self.inputs} else self.emit("identity", [t.name], o.name)
            self.outputs.append(name)
        if self.problems:
            raise UnsupportedError(
                f"cannot import the graph: {len(self.problems)} problem(s):\n  - " + "\n  - ".join(self.problems),
                "see README, Import: supported ops and quantizers (QONNX Quant with zero point 0)",
            )

    def _dynamic(self) -> set[str]:
        g = self.model.graph
        dyn = {i.name for i in g.input if i.name not in self.consts}
        for n in g.node:
            if n.op_type != "Shape" and any(i in dyn for i in n.input):
                dyn.update(n.output)
        return dyn

    def _inputs(self) -> None:
        g = self.model.graph
        for vi in g.input:
            if vi.name in self.consts:
                continue
            dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
            if any(d is not None and d < 0 for d in dims):
                raise SchemaError(
                    f"{self.origin_file}: input {vi.name!r} has shape {dims}: a negative size",
                    "re-export the model with the input's real sizes",
                )
            if len(dims) < 2 or any(d is None or d < 1 for d in dims[1:]):
                raise UnsupportedError(
                    f"input {vi.name!r} has shape {dims}: import needs a batch axis and static other axes",
                    "export with fixed input sizes (the batch may be symbolic)",
                )
            shape = (1, *dims[1:])
            self.budget.add(8 * limits.elements(shape), f"input {vi.name!r} of shape {dims}")
            perm = (
                canonical(len(shape)) if len(shape) >= 3 and self._feeds_channel_op(vi.name) else identity(len(shape))
            )
            layout = {3: "NCW", 4: "NCHW", 5: "NCDHW"}.get(len(shape), "") if perm != identity(len(shape)) else ""
            ir_shape = tuple(shape[a] for a in perm)
            self.inputs.append(ir.Input(vi.name, ir_shape, None, layout))
            self.vals[vi.name] = np.zeros((1, *ir_shape))
            self.t[vi.name] = Tensor(vi.name, shape, perm)

    def _feeds_channel_op(self, name: str) -> bool:
        """Whether an image input reaches a Conv/pool/BatchNormalization through elementwise ops only."""
        seen, todo = {name}, [name]
        while todo:
            cur = todo.pop()
            for n in self.model.graph.node:
                if cur in n.input:
                    per_channel = n.op_type in ("Quant", "BipolarQuant") and np.size(self.consts.get(n.input[1], 0)) > 1
                    if n.op_type in CHANNEL_OPS or per_channel:
                        return True
                    if n.op_type in PASS_OPS and n.input[0] == cur and n.output[0] not in seen:
                        seen.add(n.output[0])
                        todo.append(n.output[0])
        return False

    def _fold(self, node) -> None:
        missing = [i for i in node.input if i and i not in self.consts]
        if missing:
            raise Refuse(f"reads {missing} which no node computes")
        values = [self.consts.get(i) if i else None for i in node.input]
        n = L.fold_size(node, values, self.origin_file)
        self.budget.add(8 * n, f"constant {node.op_type} node {node.name or node.output[0]!r} ({n:,} values)")
        try:
            outs = L.fold(node, values, self.opset)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's or qonnx's message, for the one error
            raise Refuse(f"cannot evaluate this constant ({type(exc).__name__}: {str(exc).strip()[:160]})") from exc
        for o, v in zip(node.output, outs):
            self.consts[o] = np.asarray(v)
        if node.domain in L.QONNX_DOMAINS and node.op_type == "Quant":
            onnx_quant.weight_codes(self, node)
        elif node.op_type in ("Transpose", "Identity") and node.input[0] in self.codes:
            codes, scale = self.codes[node.input[0]]
            if node.op_type == "Transpose":
                perm = L.attrs(node).get("perm", list(range(codes.ndim))[::-1])
                scale = np.broadcast_to(scale, codes.shape).transpose(perm)
                codes = codes.transpose(perm)
            self.codes[node.output[0]] = (codes, scale)

    def _shape(self, node) -> None:
        t = self.data(node)
        a = L.attrs(node)
        self.consts[node.output[0]] = np.array(t.shape, np.int64)[a.get("start", 0) : a.get("end", len(t.shape))]
