"""The ONNX-family front end: an ONNX or QONNX file -> one `ir.Graph` whose `evaluate` reproduces
onnxruntime (float files, in float64) and qonnx's executor (QONNX files, exactly; see
`onnx_exact` for the rules and what is counted where qonnx's own float32 arithmetic decides).

    front = read("model.onnx")      # Front(graph, model, kind, notes, facts)
    y = front.graph.evaluate(to_channels_last(x, front.graph.inputs[0].layout))

Layouts. ONNX tensors are batch first; image tensors are NCHW (NCW). Inside the graph every tensor
is batch-free and channels-last. Each ONNX tensor is tracked as (IR tensor, ONNX shape, `perm`):
IR axis j holds ONNX axis perm[j]. A Transpose in the file only changes `perm` (no op); an op that
needs channels-last (Conv, pools, BatchNormalization's channel axis is any) or the file's own order
(Flatten, Reshape, MatMul on rank > 2) gets a `transpose` op when the axes that are not of size 1
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

from trigger_ml.errors import UnsupportedError
from trigger_ml.interop import ir, onnx_exact, onnx_quant
from trigger_ml.interop import onnx_load as L
from trigger_ml.interop.onnx_load import Refuse, Tensor, all_pow2

log = logging.getLogger(__name__)
SELU_ALPHA, SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875
CHANNEL_OPS = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "Pad")
PASS_OPS = ("Quant", "BipolarQuant", "Mul", "Add", "Sub", "Div", "Relu", "Identity", "Dropout", "Cast", "Clip")


@dataclass
class Front:
    graph: ir.Graph
    model: Any  # the normalised onnx.ModelProto: the reference level runs it
    kind: str  # "qonnx" or "onnx"
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # per threshold: how it was proven (onnx_exact)


def canonical(rank: int) -> tuple[int, ...]:
    """Channels-last order of an ONNX rank (batch included): NC -> C, NCHW -> HWC."""
    return tuple(range(2, rank)) + ((1,) if rank >= 2 else ())


def identity(rank: int) -> tuple[int, ...]:
    return tuple(range(1, rank))


def to_channels_last(x: np.ndarray, layout: str) -> np.ndarray:
    """A user's batch (in the file's layout, e.g. NCHW) as the graph's input (channels-last)."""
    x = np.asarray(x)
    if not layout:
        return x
    return np.moveaxis(x, 1, -1)


def read(src: str | Path | Any) -> Front:
    """Read an ONNX/QONNX file (or ModelProto); one error lists every unsupported node."""
    model = L.load(src) if isinstance(src, (str, Path)) else src
    model, notes = L.normalise(model)
    r = Reader(model, notes)
    r.run()
    facts = onnx_exact.finish(r)
    kind = "qonnx" if L.is_qonnx(model) else "onnx"
    g = ir.Graph(
        r.graph_name, r.inputs, r.nodes, r.outputs, source=f"{kind} (opset {L.default_opset(model)})", notes=r.notes
    )
    g.check()
    return Front(g, model, kind, r.notes, facts)


class Reader:
    def __init__(self, model, notes: list[str]) -> None:
        from onnx import numpy_helper

        self.model, self.notes = model, list(notes)
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
        self.vals[name] = ir.OPS[op](n, *(self.vals[i] for i in inputs))
        self.nodes.append(n)
        if onnx is not None:
            self.origin[name] = onnx
        return name

    def ir_shape(self, t: Tensor) -> tuple[int, ...]:
        return tuple(self.vals[t.name].shape[1:])

    def tensor(self, name: str, shape: tuple[int, ...], perm: tuple[int, ...]) -> Tensor:
        return Tensor(name, tuple(int(d) for d in shape), tuple(perm))

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
                    getattr(self, f"op_{node.op_type}")(node, a)
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
            if len(dims) < 2 or any(d is None or d < 1 for d in dims[1:]):
                raise UnsupportedError(
                    f"input {vi.name!r} has shape {dims}: import needs a batch axis and static other axes",
                    "export with fixed input sizes (the batch may be symbolic)",
                )
            shape = (1, *dims[1:])
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
        outs = L.fold(node, [self.consts.get(i) if i else None for i in node.input], self.opset)
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

    # ------------------------------------------------------------------ ops

    def op_Identity(self, node, a) -> None:
        self.t[node.output[0]] = self.data(node)

    op_Dropout = op_Identity

    def op_Cast(self, node, a) -> None:
        from onnx import TensorProto

        if a.get("to") not in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16):
            raise Refuse(f"cast to a non-float type ({a.get('to')}) on the data path")
        self.op_Identity(node, a)

    def op_Relu(self, node, a) -> None:
        self.unary(node, "relu")

    def op_Sigmoid(self, node, a) -> None:
        self.unary(node, "sigmoid")

    def op_Tanh(self, node, a) -> None:
        self.unary(node, "tanh")

    def op_Selu(self, node, a) -> None:
        self.unary(node, "selu", {"alpha": a.get("alpha", SELU_ALPHA), "gamma": a.get("gamma", SELU_GAMMA)})

    def op_Softmax(self, node, a) -> None:
        t = self.data(node)
        r = len(t.shape)
        axis = a.get("axis", 1 if self.opset < 13 else -1) % r
        if axis == 0 or (self.opset < 13 and axis != r - 1 and any(t.shape[j] != 1 for j in range(axis + 1, r))):
            raise Refuse(f"softmax over axis {axis} of a tensor of shape {t.shape}")
        j = t.perm.index(axis)
        self.unary(node, "softmax", {"axis": j - len(t.perm)})

    def op_Clip(self, node, a) -> None:
        lo = a.get("min", -np.inf) if self.opset < 11 else self.const(node, 1, -np.inf)
        hi = a.get("max", np.inf) if self.opset < 11 else self.const(node, 2, np.inf)
        self.unary(node, "clip", {"lo": float(lo), "hi": float(hi)})

    def op_Neg(self, node, a) -> None:
        self.unary(node, "scale_shift", weights={"scale": -1.0, "shift": 0.0})

    def op_Pow(self, node, a) -> None:
        e = self.const(node, 1)
        if np.all(e == 1):
            self.op_Identity(node, a)
        elif np.all(e == 2):
            t = self.data(node)
            self.same(
                node, t, self.emit("mul", [t.name, t.name], node.output[0], onnx=(node, node.input[0], node.output[0]))
            )
        else:
            raise Refuse(f"power {np.ravel(e)[:3].tolist()} of a computed tensor (1 and 2 are supported)")

    def _binary(self, node, op: str) -> None:
        ta, tb = (self.t.get(i) for i in node.input[:2])
        if ta is not None and tb is not None:
            if op == "Div":
                raise Refuse("division of two computed tensors")
            if len(ta.shape) != len(tb.shape):
                raise Refuse(f"operands of ranks {len(ta.shape)} and {len(tb.shape)}")
            tb = self.to_perm(tb, ta.perm) if ta.perm != tb.perm else tb
            shape = np.broadcast_shapes(ta.shape, tb.shape)
            out = self.emit(op.lower(), [ta.name, tb.name], node.output[0])
            self.t[node.output[0]] = Tensor(out, shape, ta.perm)
            return
        first = ta is not None
        t = ta if first else tb
        c = self.const_ir(self.const(node, 1 if first else 0), t)
        origin = (node, node.input[0 if first else 1], node.output[0])
        if op == "Max":
            if c.ndim:
                raise Refuse("maximum with a constant that is not a scalar")
            out = self.emit("clip", [t.name], node.output[0], {"lo": float(c), "hi": np.inf}, onnx=origin)
            return self.same(node, t, out)
        if op == "Div" and not first:
            raise Refuse("a constant divided by a computed tensor")
        scale, shift = {
            "Add": (1.0, c),
            "Sub": (1.0, -c) if first else (-1.0, c),
            "Mul": (c, 0.0),
            "Div": (1.0 / c, 0.0),
        }[op]
        attrs = {}
        if op == "Div" and not all_pow2(c):
            attrs["float"] = f"division by {np.ravel(c)[:3].tolist()} (not a power of two)"
        out = self.emit("scale_shift", [t.name], node.output[0], attrs, {"scale": scale, "shift": shift}, origin)
        self.same(node, t, out)

    def op_Add(self, node, a) -> None:
        self._binary(node, "Add")

    def op_Sub(self, node, a) -> None:
        self._binary(node, "Sub")

    def op_Mul(self, node, a) -> None:
        self._binary(node, "Mul")

    def op_Div(self, node, a) -> None:
        self._binary(node, "Div")

    def op_Max(self, node, a) -> None:
        if len(node.input) != 2:
            raise Refuse(f"Max of {len(node.input)} inputs (2 are supported)")
        self._binary(node, "Max")

    def _dense(self, node, t: Tensor, kernel: np.ndarray, bias: np.ndarray | None, weight: str, alpha: float = 1.0):
        """y = t @ kernel (+ bias) on t's last ONNX axis; a weight that a Quant made from integer codes
        with a scale that is not a power of two becomes the codes and a scale_shift after (exact)."""
        if len(t.shape) > 2:
            t = self.to_perm(t, identity(len(t.shape)))
        codes = self.codes.get(weight)
        attrs: dict[str, Any] = {}
        post = None
        if codes is not None:
            c, s = codes
            s = np.broadcast_to(s, c.shape)
            if np.all(s == s[:1]):  # one scale per output column: y = (x @ codes) * s + b
                kernel, post = c.astype(np.float64), s[0].astype(np.float64) * alpha
        elif alpha != 1.0:
            kernel = kernel * alpha
            if not all_pow2(np.asarray(alpha)):
                attrs["folded_scale"] = np.asarray(alpha, np.float64)
        origin = (node, node.input[0], node.output[0])
        w = {"kernel": kernel}
        if bias is not None and post is None:
            w["bias"] = np.broadcast_to(bias, kernel.shape[-1:]).astype(np.float64)
        out = self.emit("dense", [t.name], node.output[0], attrs, w, None if post is not None else origin)
        if post is not None:
            shift = np.zeros(kernel.shape[-1]) if bias is None else np.broadcast_to(bias, kernel.shape[-1:])
            out = self.emit(
                "scale_shift", [out], node.output[0], {"weight_scale": post}, {"scale": post, "shift": shift}
            )
        self.t[node.output[0]] = Tensor(out, (*t.shape[:-1], kernel.shape[-1]), t.perm)

    def op_MatMul(self, node, a) -> None:
        t = self.data(node)
        w = self.const(node, 1)
        if w.ndim != 2 or len(t.shape) < 2:
            raise Refuse(f"MatMul of shapes {t.shape} and {w.shape} (a 2-D constant weight is supported)")
        self._dense(node, t, w.astype(np.float64), None, node.input[1])

    def op_Gemm(self, node, a) -> None:
        t = self.data(node)
        if a.get("transA", 0) or len(t.shape) != 2:
            raise Refuse("Gemm with transA=1 or an input that is not 2-D")
        w = self.const(node, 1).astype(np.float64)
        name = node.input[1]
        if a.get("transB", 0):
            w = w.T
            if name in self.codes:
                c, s = self.codes[name]
                self.codes[name + "__T"] = (c.T, np.broadcast_to(s, c.shape).T)
                name += "__T"
        c = self.const(node, 2)
        bias = None if c is None else (a.get("beta", 1.0) * np.asarray(c, np.float64)).reshape(-1)
        if bias is not None and bias.size not in (1, w.shape[1]):
            raise Refuse(f"Gemm bias of shape {np.shape(c)}")
        self._dense(node, t, w, bias, name, float(a.get("alpha", 1.0)))

    def _window(self, t: Tensor, a: dict, kernel: tuple[int, ...]) -> tuple:
        nd = len(kernel)
        strides = tuple(a.get("strides", (1,) * nd))
        if any(d != 1 for d in a.get("dilations", (1,) * nd)):
            raise Refuse(f"dilations {a['dilations']} (only 1 is supported)")
        size = t.shape[2:]
        auto = a.get("auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            total = [max((-(-n // s) - 1) * s + k - n, 0) for n, s, k in zip(size, strides, kernel)]
            lo = [p // 2 if auto == "SAME_UPPER" else p - p // 2 for p in total]
            pads = tuple((lo_, p - lo_) for lo_, p in zip(lo, total))
        elif auto == "VALID":
            pads = ((0, 0),) * nd
        else:
            p = a.get("pads", (0,) * (2 * nd))
            pads = tuple((p[j], p[j + nd]) for j in range(nd))
        if any(v < 0 for pr in pads for v in pr):
            raise Refuse(f"negative pads {pads}")
        if a.get("ceil_mode", 0):
            floor = [(n + p0 + p1 - k) // s + 1 for n, (p0, p1), k, s in zip(size, pads, kernel, strides)]
            ceil = [-(-(n + p0 + p1 - k) // s) + 1 for n, (p0, p1), k, s in zip(size, pads, kernel, strides)]
            if floor != ceil:
                raise Refuse("ceil_mode=1 changes the output size here (supported: ceil_mode=0)")
        return strides, pads

    def op_Conv(self, node, a) -> None:
        t = self.data(node)
        if len(t.shape) < 3:
            raise Refuse(f"Conv of a tensor of shape {t.shape}")
        t = self.to_perm(t, canonical(len(t.shape)))
        w = self.const(node, 1).astype(np.float64)
        b = self.const(node, 2)
        groups = int(a.get("group", 1))
        cin, nd = t.shape[1], w.ndim - 2
        if cin % groups or w.shape[1] * groups != cin or w.shape[0] % groups:
            raise Refuse(f"group {groups} with {cin} input channels and a kernel of shape {w.shape}")
        strides, pads = self._window(t, a, w.shape[2:])
        kernel = w.transpose(*range(2, 2 + nd), 1, 0)
        weights = {"kernel": kernel} if b is None else {"kernel": kernel, "bias": np.asarray(b, np.float64)}
        attrs = {"strides": strides, "pads": pads, "groups": groups, "dilation": (1,) * nd}
        out = self.emit("conv", [t.name], node.output[0], attrs, weights, (node, node.input[0], node.output[0]))
        ir_shape = self.vals[out].shape[1:]
        self.t[node.output[0]] = Tensor(out, (1, ir_shape[-1], *ir_shape[:-1]), canonical(len(t.shape)))

    def _pool(self, node, a, op: str) -> None:
        t = self.data(node)
        if len(node.output) > 1 and node.output[1]:
            raise Refuse("MaxPool's indices output")
        if len(t.shape) < 3:
            raise Refuse(f"pooling a tensor of shape {t.shape}")
        t = self.to_perm(t, canonical(len(t.shape)))
        kernel = tuple(a["kernel_shape"])
        strides, pads = self._window(t, a, kernel)
        attrs = {"pool": kernel, "strides": strides, "pads": pads}
        if op == "avgpool":
            attrs["count_pad"] = bool(a.get("count_include_pad", 0))
        out = self.emit(op, [t.name], node.output[0], attrs, onnx=(node, node.input[0], node.output[0]))
        ir_shape = self.vals[out].shape[1:]
        self.t[node.output[0]] = Tensor(out, (1, ir_shape[-1], *ir_shape[:-1]), t.perm)

    def op_MaxPool(self, node, a) -> None:
        self._pool(node, a, "maxpool")

    def op_AveragePool(self, node, a) -> None:
        self._pool(node, a, "avgpool")

    def _global(self, node, op: str) -> None:
        t = self.data(node)
        if len(t.shape) < 3:
            raise Refuse(f"global pooling of a tensor of shape {t.shape}")
        t = self.to_perm(t, canonical(len(t.shape)))
        out = self.emit(op, [t.name], node.output[0] + "__g", onnx=(node, node.input[0], node.output[0]))
        shape = (1, t.shape[1], *(1,) * (len(t.shape) - 2))
        out = self.emit("reshape", [out], node.output[0], {"shape": tuple(shape[a] for a in t.perm)})
        self.t[node.output[0]] = Tensor(out, shape, t.perm)

    def op_GlobalAveragePool(self, node, a) -> None:
        self._global(node, "global_avgpool")

    def op_GlobalMaxPool(self, node, a) -> None:
        self._global(node, "global_maxpool")

    def op_BatchNormalization(self, node, a) -> None:
        t = self.data(node)
        if a.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
            raise Refuse("batch normalization in training mode")
        gamma, beta, mean, var = (np.asarray(self.const(node, j), np.float64) for j in (1, 2, 3, 4))
        scale = gamma / np.sqrt(var + float(np.float32(a.get("epsilon", 1e-5))))
        shift = beta - mean * scale
        per = (1, len(gamma), *(1,) * (len(t.shape) - 2))
        w = {"scale": self.const_ir(scale.reshape(per), t), "shift": self.const_ir(shift.reshape(per), t)}
        self.unary(node, "scale_shift", {"float": "batch normalization"}, w)

    def op_Flatten(self, node, a) -> None:
        t = self.data(node)
        axis = a.get("axis", 1) % max(len(t.shape), 1)
        if axis == 0:
            self.notes.append(f"Flatten {node.name or node.output[0]!r} with axis=0 read as axis=1 (valid for batch 1)")
        elif int(np.prod(t.shape[1:axis])) != 1:
            raise Refuse(f"Flatten axis={axis} of shape {t.shape} merges axes with the batch")
        t = self.to_perm(t, identity(len(t.shape)))
        out = self.emit("flatten", [t.name], node.output[0], onnx=(node, node.input[0], node.output[0]))
        self.t[node.output[0]] = Tensor(out, (1, int(np.prod(t.shape))), (1,))

    def _reshaped(self, node, t: Tensor, shape: tuple[int, ...]) -> None:
        """t viewed with ONNX shape `shape` (batch first): layout kept when only size-1 axes change."""
        if len(shape) < 2 or shape[0] != 1:
            raise Refuse(f"reshape {t.shape} -> {shape} moves the batch axis")
        old = [t.shape[a] for a in range(1, len(t.shape)) if t.shape[a] != 1]
        new = [d for d in shape[1:] if d != 1]
        if old == new:
            big_new = [a for a in range(1, len(shape)) if shape[a] != 1]
            big_old = [a for a in range(1, len(t.shape)) if t.shape[a] != 1]
            order = [big_new[big_old.index(a)] for a in t.perm if t.shape[a] != 1]
            ones = [a for a in range(1, len(shape)) if shape[a] == 1]
            perm = next(
                (p for p in (canonical(len(shape)), identity(len(shape))) if [a for a in p if shape[a] != 1] == order),
                tuple(order + ones),
            )
        else:
            t = self.to_perm(t, identity(len(t.shape)))
            perm = identity(len(shape))
        ir_shape = tuple(shape[a] for a in perm)
        out = t.name
        if ir_shape != self.ir_shape(t):
            out = self.emit("reshape", [t.name], node.output[0], {"shape": ir_shape})
        self.t[node.output[0]] = Tensor(out, tuple(shape), perm)

    def op_Reshape(self, node, a) -> None:
        t = self.data(node)
        target = [int(v) for v in np.asarray(self.const(node, 1)).ravel()]
        if not a.get("allowzero", 0):
            target = [t.shape[j] if v == 0 else v for j, v in enumerate(target)]
        if target.count(-1) == 1:
            rest = int(np.prod([v for v in target if v != -1]))
            target[target.index(-1)] = int(np.prod(t.shape)) // max(rest, 1)
        if int(np.prod(target)) != int(np.prod(t.shape)):
            raise Refuse(f"reshape {t.shape} -> {target}")
        self._reshaped(node, t, tuple(target))

    def op_Transpose(self, node, a) -> None:
        t = self.data(node)
        p = list(a.get("perm", range(len(t.shape))[::-1]))
        if p[0] != 0:
            raise Refuse(f"transpose {p} moves the batch axis")
        self.t[node.output[0]] = Tensor(t.name, tuple(t.shape[j] for j in p), tuple(p.index(j) for j in t.perm))

    def _axes(self, node, a) -> list[int]:
        axes = a.get("axes") if self.opset < 13 else self.const(node, 1)
        return [] if axes is None else [int(v) for v in np.ravel(axes)]

    def op_Squeeze(self, node, a) -> None:
        t = self.data(node)
        axes = [v % len(t.shape) for v in self._axes(node, a)] or [j for j in range(1, len(t.shape)) if t.shape[j] == 1]
        if 0 in axes or any(t.shape[j] != 1 for j in axes):
            raise Refuse(f"squeeze axes {axes} of shape {t.shape}")
        self._reshaped(node, t, tuple(d for j, d in enumerate(t.shape) if j not in axes))

    def op_Unsqueeze(self, node, a) -> None:
        t = self.data(node)
        r = len(t.shape) + len(self._axes(node, a))
        axes = sorted(v % r for v in self._axes(node, a))
        if 0 in axes:
            raise Refuse("unsqueeze before the batch axis")
        rest = iter(t.shape)
        self._reshaped(node, t, tuple(1 if j in axes else next(rest) for j in range(r)))

    def op_Concat(self, node, a) -> None:
        ts = [self.data(node, j) for j in range(len(node.input))]
        axis = a["axis"] % len(ts[0].shape)
        if axis == 0 or any(len(t.shape) != len(ts[0].shape) for t in ts):
            raise Refuse(f"concatenation along axis {axis} of tensors of ranks {[len(t.shape) for t in ts]}")
        perm = ts[0].perm
        ts = [self.to_perm(t, perm) if t.perm != perm else t for t in ts]
        out = self.emit("concat", [t.name for t in ts], node.output[0], {"axis": perm.index(axis)})
        shape = list(ts[0].shape)
        shape[axis] = sum(t.shape[axis] for t in ts)
        self.t[node.output[0]] = Tensor(out, tuple(shape), perm)

    def op_Pad(self, node, a) -> None:
        t = self.data(node)
        r = len(t.shape)
        if a.get("mode", "constant") != "constant":
            raise Refuse(f"pad mode {a.get('mode')}")
        pads = a.get("pads") if self.opset < 11 else self.const(node, 1)
        value = a.get("value", 0.0) if self.opset < 11 else self.const(node, 2, 0.0)
        axes = list(range(r)) if len(node.input) < 4 or not node.input[3] else [v % r for v in self.const(node, 3)]
        pads = [int(v) for v in np.ravel(pads)]
        per = dict.fromkeys(range(r), (0, 0))
        per.update({ax: (pads[j], pads[j + len(axes)]) for j, ax in enumerate(axes)})
        if np.any(np.asarray(value) != 0) or r < 3 or per[0] != (0, 0) or per[1] != (0, 0):
            raise Refuse("padding other than zeros on the spatial axes of an NC... tensor")
        if any(v < 0 for p in per.values() for v in p):
            raise Refuse("negative pads (cropping)")
        t = self.to_perm(t, canonical(r))
        out = self.emit("pad", [t.name], node.output[0], {"pads": tuple(per[j] for j in range(2, r))})
        self.t[node.output[0]] = Tensor(out, tuple(d + sum(per[j]) for j, d in enumerate(t.shape)), t.perm)
