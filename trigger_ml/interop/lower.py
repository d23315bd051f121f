"""Lower a fixed-point import graph (`ir.Graph` after `policy`) to a Keras 3 model of hgq2 layers
that hls4ml 1.3 and da4ml 0.5 both convert exactly, and check it.

The graph is first rewritten (`expand`: pads into convs, concat before a dense split, bipolar and
thresholds as units, quantizers tightened by interval bounds), then each op becomes the layer that
docs/notes' coverage table found exact in both tools:

    quant          the next layer's input quantizer (iq) when it is that layer's only input and the
                   layer takes one (dense, conv, batch norm, pools), else a `Quantizer` layer
    dense, conv    QDense / QConv1D / QConv2D, relu fused (activation='relu'; never keras ReLU),
                   weight and bias quantizers frozen to the smallest formats holding the values;
                   groups (depthwise) as a block-diagonal kernel; pads as 'same' / 'valid' or a
                   0/1 QDense that pads
    scale_shift    QBatchNormalization(epsilon=0, mean 0, variance 1, gamma = scale, beta = shift)
    relu           fused into the dense/conv before it, else an identity QDense / 1x1 QConv with relu
    clip           a SAT `Quantizer` on the input's grid
    lut            QUnaryFunctionLUT(allow_heterogeneous_table=False, iq = q_in, oq = q_out)
    softmax_table  QSoftmax(stable=True, explicit table formats)
    maxpool, avgpool, global pools   QMaxPool / QAvgPool (power-of-two windows) / QGlobal*
    flatten, reshape   Flatten, Reshape; transpose, pad: a 0/1 QDense (Flatten, QDense, Reshape)
    add, sub, mul, max QAdd / QSubtract / QMultiply / QMaximum; concat: Concatenate (equal shapes)

`lower(graph, name)` returns a `Lowered` (the model, the card's layer description, the input
grid); `check(graph, lowered, x)` runs the model in float64 (the golden model) against
`graph.evaluate` and raises a MismatchError naming the first graph tensor that differs. Anything
the rules cannot express is one UnsupportedError listing every node with the nearest alternative.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trigger_ml.errors import MismatchError, UnsupportedError
from trigger_ml.fixed import Fixed, Grid, needed_integer, smallest_holding
from trigger_ml.interop import analysis as A
from trigger_ml.interop.expand import expand
from trigger_ml.interop.ir import Graph, Node
from trigger_ml.interop.policy import float32_exact

MAX_FRAC = 32
IQ_OPS = ("dense", "conv", "scale_shift", "maxpool", "avgpool", "global_avgpool", "global_maxpool")
MERGES = {"add": "QAdd", "sub": "QSubtract", "mul": "QMultiply", "max": "QMaximum"}


def exact_fmt(v: np.ndarray) -> Fixed | None:
    """The smallest format (integer bits >= 0) holding every value of v exactly, or None."""
    return smallest_holding(v, max_frac=MAX_FRAC)


def conf(fmt: Fixed, place: str = "datalane", scalar: bool = False):
    """A frozen hgq2 quantizer config of one format (datalane: one format per element unless scalar)."""
    from hgq.config import QuantizerConfig

    extra: dict[str, Any] = {}
    if place == "datalane":
        extra = {"heterogeneous_axis": ()} if scalar else {"homogeneous_axis": (0,)}
    elif scalar:
        extra = {"heterogeneous_axis": ()}
    k, i, f = fmt.kif
    return QuantizerConfig(
        "kif", place, k0=k, i0=i, f0=f, round_mode=fmt.rounding, overflow_mode=fmt.overflow, trainable=False, **extra
    )


@dataclass
class Lowered:
    model: Any
    graph: Graph  # the expanded graph the model was built from
    input_grid: Grid
    input_shape: tuple[int, ...]
    tensor_layers: dict[str, str] = field(default_factory=dict)  # graph tensor -> Keras layer computing it

    def describe(self) -> list[dict[str, Any]]:
        """The card's `layers` (a description; the model file is the truth)."""
        return [{"type": type(layer).__name__, "name": layer.name} for layer in self.model.layers]


def _ident(name: str, used: set[str]) -> str:
    base = re.sub(r"\W", "_", name, flags=re.ASCII).strip("_") or "layer"
    base = base if base[0].isalpha() else f"l_{base}"
    out, j = base[:56], 1
    while out in used:
        out, j = f"{base[:52]}_{j}", j + 1
    used.add(out)
    return out


def _same_pads(n_in: int, k: int, s: int) -> tuple[int, int]:
    out = -(-n_in // s)
    total = max((out - 1) * s + k - n_in, 0)
    return total // 2, total - total // 2


class _Builder:
    def __init__(self, g: Graph, name: str) -> None:
        import keras

        self.k = keras
        self.g, self.name = g, name
        self.bounds, self.grids, self.shapes = A.bounds(g), A.grids(g), A.shapes(g)
        self.val: dict[str, Any] = {}
        self.pend: dict[str, tuple[str, Fixed]] = {}
        self.assign: list[tuple[Any, dict[str, np.ndarray]]] = []
        self.problems: list[str] = []
        self.used: set[str] = set()
        self.tensor_layers: dict[str, str] = {}
        self.done: set[str] = set()
        self.quantized: set[str] = set()  # tensors a Quantizer layer writes (besides pending quantizers)

    # -- tensors

    def get(self, t: str, quantizing: bool = False):
        """The Keras tensor of graph tensor t (a pending quantizer becomes a Quantizer layer);
        `quantizing`: the reader quantizes it again (refused after a Quantizer: hls4ml keeps only
        the last of two quantizers in a row)."""
        if quantizing and (t in self.pend or t in self.quantized):
            raise UnsupportedError(
                "two quantizers in a row (hls4ml keeps only the last of them): make the first pass its "
                "values unchanged, or put an op between them"
            )
        if t not in self.val:
            src, fmt = self.pend[t]
            from hgq.layers import Quantizer

            layer = Quantizer(conf(fmt), name=_ident(f"{t}_q", self.used))
            self.val[t] = layer(self.get(src, quantizing=True))
            self.tensor_layers[t] = layer.name
        return self.val[t]

    def take(self, t: str, n: Node) -> tuple[Any, dict[str, Any]]:
        """The input of an iq-taking layer and its iq kwargs (the pending quantizer, when n is its
        only reader), else the tensor as it is and no iq."""
        if t in self.pend and t not in self.val and self.g.consumers(t) == [n] and t not in self.g.outputs:
            src, fmt = self.pend[t]
            return self.get(src, quantizing=True), {"iq_conf": conf(fmt)}
        return self.get(t), {"enable_iq": False}

    def out(self, n: Node, value, layer) -> None:
        self.val[n.output] = value
        self.tensor_layers[n.output] = layer.name

    def fused_relu(self, n: Node) -> str | None:
        c = self.g.consumers(n.output)
        if len(c) == 1 and c[0].op == "relu" and n.output not in self.g.outputs:
            self.done.add(c[0].name)
            return c[0].output
        return None

    def weight_confs(self, w: np.ndarray, b: np.ndarray, where: str) -> dict[str, Any]:
        kq, bq = exact_fmt(w), exact_fmt(b)
        for what, v, fmt in (("weights", w, kq), ("biases", b, bq)):
            if fmt is None or not float32_exact(v):
                self.problems.append(
                    f"{where}: {what} are not float32-exact values on a power-of-two grid of at most {MAX_FRAC} "
                    "fraction bits (apply the precision policy: weight_bits <= 24)"
                )
        if kq is None or bq is None:
            kq = bq = Fixed(True, 1, 0)
        return {"kq_conf": conf(kq, "weight"), "bq_conf": conf(bq, "bias")}

    # -- the walk

    def build(self):
        g = self.g
        if len(g.inputs) != 1 or len(g.outputs) != 1:
            raise UnsupportedError(
                f"the graph has {len(g.inputs)} inputs and {len(g.outputs)} outputs",
                "the firmware takes one input and one output tensor: concatenate them in the source",
            )
        inp = g.inputs[0]
        x = self.k.Input(tuple(inp.shape), name=_ident(inp.name, self.used))
        self.val["__input__"] = x
        fmt = inp.q.uniform() if inp.q is not None else None
        if fmt is None:
            raise UnsupportedError(
                f"input {inp.name!r} has {'no' if inp.q is None else 'a per-element'} format",
                "apply the precision policy (it gives inputs --input-format); per-element input formats are not supported",
            )
        self.pend[inp.name] = ("__input__", fmt)
        failed: set[str] = set()
        for n in g.nodes:
            if n.name in self.done:
                continue
            if failed & set(n.inputs):  # its input could not be lowered (already listed)
                failed.add(n.output)
                continue
            try:
                getattr(self, f"op_{n.op}", self.op_unsupported)(n)
            except UnsupportedError as exc:
                self.problems.append(f"node {n.name!r} ({n.op}): {exc.what}")
                failed.add(n.output)
        if self.problems:
            raise UnsupportedError(
                "cannot lower the graph to hgq2 layers:\n  - " + "\n  - ".join(self.problems),
                "see trigger_ml/interop/lower.py for the ops and patterns each lowering takes",
            )
        y = self.get(g.outputs[0])
        model = self.k.Model(x, y, name=self.name)
        for layer, values in self.assign:
            for attr, v in values.items():
                getattr(layer, attr).assign(np.asarray(v, np.float32))
        return model, fmt

    def op_unsupported(self, n: Node) -> None:
        alt = {
            "sigmoid": "apply the precision policy (lut)",
            "tanh": "apply the precision policy (lut)",
            "selu": "apply the precision policy (lut; Keras' selu constants only)",
            "softmax": "apply the precision policy (softmax_table)",
            "bipolar": "its input must be on a grid",
            "threshold": "its input must be on a grid",
        }
        raise UnsupportedError(f"no lowering for op {n.op!r}" + (f"; {alt[n.op]}" if n.op in alt else ""))

    def op_identity(self, n: Node) -> None:
        self.val[n.output] = self.get(n.inputs[0])

    def op_quant(self, n: Node) -> None:
        fmt = n.attrs["q"].uniform()
        if fmt is None:
            raise UnsupportedError("a per-element quantizer (give every element one format)")
        self.pend[n.output] = (n.inputs[0], fmt)

    def op_dense(self, n: Node) -> None:
        from hgq.layers import QDense

        if len(self.shapes[n.inputs[0]]) > 2:
            raise UnsupportedError("a dense over a tensor of rank > 2 (flatten it, or use a 1x1 conv)")
        x, iq = self.take(n.inputs[0], n)
        w = n.weights["kernel"]
        b = n.weights.get("bias", np.zeros(w.shape[-1]))
        relu_out = self.fused_relu(n)
        layer = QDense(
            w.shape[-1],
            activation="relu" if relu_out else None,
            name=_ident(n.name, self.used),
            enable_ebops=False,
            **iq,
            **self.weight_confs(w, b, f"node {n.name!r}"),
        )
        self.out_weighted(n, layer, x, relu_out, w, b)

    def op_conv(self, n: Node) -> None:
        from hgq.layers import QConv1D, QConv2D

        k = n.weights["kernel"]
        nd = k.ndim - 2
        if nd not in (1, 2):
            raise UnsupportedError(f"a {nd}-D convolution (1-D and 2-D are supported)")
        groups = int(n.attrs.get("groups", 1))
        if groups > 1:  # depthwise / grouped: block-diagonal kernel (hgq2 0.2 has no depthwise layer)
            cin = self.shapes[n.inputs[0]][-1]
            per_in, per_out = cin // groups, k.shape[-1] // groups
            full = np.zeros((*k.shape[:-2], cin, k.shape[-1]))
            for gi in range(groups):
                full[..., gi * per_in : (gi + 1) * per_in, gi * per_out : (gi + 1) * per_out] = k[
                    ..., :, gi * per_out : (gi + 1) * per_out
                ]
            k = full
        strides = tuple(n.attrs.get("strides", (1,) * nd))
        pads = tuple(tuple(p) for p in n.attrs.get("pads", ((0, 0),) * nd))
        in_shape = self.shapes[n.inputs[0]]
        if all(p == (0, 0) for p in pads):
            padding = "valid"
        elif all(p == _same_pads(in_shape[j], k.shape[j], strides[j]) for j, p in enumerate(pads)):
            padding = "same"
        else:
            padding = "pad"
        if padding == "pad":  # zero padding Keras cannot say: a 0/1 QDense that pads, then a valid conv
            out_shape = np.pad(np.zeros(in_shape), [*pads, (0, 0)]).shape
            pad = lambda a: np.pad(a, [*pads, (0, 0)])  # noqa: E731
            x = self.reindex(self.get(n.inputs[0]), in_shape, pad, f"{n.name}_pad", out_shape)
            iq, padding = {"enable_iq": False}, "valid"
        else:
            x, iq = self.take(n.inputs[0], n)
        b = n.weights.get("bias", np.zeros(k.shape[-1]))
        relu_out = self.fused_relu(n)
        cls = QConv1D if nd == 1 else QConv2D
        layer = cls(
            k.shape[-1],
            k.shape[:nd],
            strides=strides,
            padding=padding,
            activation="relu" if relu_out else None,
            name=_ident(n.name, self.used),
            enable_ebops=False,
            **iq,
            **self.weight_confs(k, b, f"node {n.name!r}"),
        )
        self.out_weighted(n, layer, x, relu_out, k, b)

    def out_weighted(self, n: Node, layer, x, relu_out: str | None, kernel: np.ndarray, bias: np.ndarray) -> None:
        """A dense/conv layer's output (under its fused relu's name when there is one) and its weights."""
        self.out(n, layer(x), layer)
        if relu_out:
            self.val[relu_out] = self.val.pop(n.output)
            self.tensor_layers[relu_out] = self.tensor_layers.pop(n.output)
        self.assign.append((layer, {"kernel": kernel, "bias": bias}))

    def op_scale_shift(self, n: Node) -> None:
        from hgq.layers import QBatchNormalization

        c = self.shapes[n.inputs[0]][-1]
        scale = np.broadcast_to(np.asarray(n.weights["scale"], np.float64), (c,)).copy()
        shift = np.broadcast_to(np.asarray(n.weights["shift"], np.float64), (c,)).copy()
        x, iq = self.take(n.inputs[0], n)
        confs = self.weight_confs(scale, shift, f"node {n.name!r}")
        layer = QBatchNormalization(epsilon=0.0, name=_ident(n.name, self.used), enable_ebops=False, **iq, **confs)
        self.out(n, layer(x), layer)
        self.assign.append(
            (layer, {"bn_gamma": scale, "bn_beta": shift, "moving_mean": np.zeros(c), "moving_variance": np.ones(c)})
        )

    def _sat(self, n: Node, fmt: Fixed) -> None:
        from hgq.layers import Quantizer

        t = n.inputs[0]
        x = self.identity(n, False, f"{n.name}_in")[1] if t in self.pend or t in self.quantized else self.get(t)
        layer = Quantizer(conf(fmt), name=_ident(n.name, self.used))
        self.out(n, layer(x), layer)
        self.quantized.add(n.output)

    def identity(self, n: Node, relu: bool, name: str):
        """An identity QDense / 1x1 QConv on n's input (with relu), taking a pending quantizer as its iq."""
        from hgq.layers import QConv1D, QConv2D, QDense

        shape = self.shapes[n.inputs[0]]
        c, nd = shape[-1], len(shape) - 1
        if nd > 2:
            raise UnsupportedError(f"a {n.op} on a tensor of rank {len(shape)}")
        x, iq = self.take(n.inputs[0], n)
        kw = {"use_bias": False, "activation": "relu" if relu else None, "enable_ebops": False, **iq}
        kw.update(name=_ident(name, self.used), kq_conf=conf(Fixed(False, 1, 0), "weight"))
        layer = QDense(c, **kw) if nd == 0 else (QConv1D if nd == 1 else QConv2D)(c, (1,) * nd, **kw)
        self.assign.append((layer, {"kernel": np.eye(c).reshape((1,) * nd + (c, c))}))
        return layer, layer(x)

    def op_relu(self, n: Node) -> None:
        """A relu not fused into a dense/conv: an identity QDense / 1x1 QConv with activation='relu'
        (a pending quantizer becomes its iq, so two quantizers around a relu stay apart)."""
        layer, y = self.identity(n, True, n.name)
        self.out(n, y, layer)

    def op_clip(self, n: Node) -> None:
        lo, hi, f = float(n.attrs["lo"]), float(n.attrs["hi"]), self.grids[n.inputs[0]]
        if f is None:
            raise UnsupportedError("its input is on no grid")
        for signed in (False, True):
            i = needed_integer(lo, hi, f, signed)
            for ovf in ("SAT", "SAT_SYM"):
                fmt = Fixed(signed, i, f, "TRN", ovf)
                if (fmt.min_value, fmt.max_value) == (lo, hi):
                    return self._sat(n, fmt)
        raise UnsupportedError(
            f"clip to [{lo:g}, {hi:g}] is not the range of a fixed-point format on the input's grid "
            "(supported: [0, 2**i - lsb], [-2**i, 2**i - lsb], [-(2**i - lsb), 2**i - lsb])"
        )

    def op_lut(self, n: Node) -> None:
        from hgq.layers import QUnaryFunctionLUT

        q_in, q_out = n.attrs["q_in"].uniform(), n.attrs["q_out"].uniform()
        if q_in is None or q_out is None:
            raise UnsupportedError("per-element table formats")
        if q_in.width > 16:
            raise UnsupportedError(f"a table of 2**{q_in.width} entries (the policy keeps them <= 2**12)")
        layer = QUnaryFunctionLUT(
            n.attrs["fn"],
            iq_conf=conf(q_in, scalar=True),
            oq_conf=conf(q_out, "table", scalar=True),
            allow_heterogeneous_table=False,
            enable_ebops=False,
            name=_ident(n.name, self.used),
        )
        x = self.get(n.inputs[0], quantizing=True)
        shape = tuple(self.shapes[n.inputs[0]])
        if len(shape) > 1:  # hls4ml builds the table through the output quantizer on a (1, N) batch
            x = self.k.layers.Reshape((-1,), name=_ident(f"{n.name}_flat", self.used))(x)
        y = layer(x)
        if len(shape) > 1:
            y = self.k.layers.Reshape(tuple(shape), name=_ident(f"{n.name}_shape", self.used))(y)
        self.out(n, y, layer)

    def op_softmax_table(self, n: Node) -> None:
        from hgq.layers import QSoftmax

        a = n.attrs
        layer = QSoftmax(
            stable=True,
            enable_iq=False,
            exp_iq_conf=conf(a["exp_in"], scalar=True),
            exp_oq_conf=conf(a["exp_out"], "table", scalar=True),
            inv_iq_conf=conf(a["inv_in"], scalar=True),
            inv_oq_conf=conf(a["inv_out"], "table", scalar=True),
            enable_ebops=False,
            name=_ident(n.name, self.used),
        )
        self.out(n, layer(self.get(n.inputs[0])), layer)

    def _pool_padding(self, n: Node, pool: tuple[int, ...], strides: tuple[int, ...]) -> str:
        pads = tuple(tuple(p) for p in n.attrs.get("pads", ((0, 0),) * len(pool)))
        in_shape = self.shapes[n.inputs[0]]
        if all(p == (0, 0) for p in pads):
            return "valid"
        if not n.attrs.get("count_pad") and all(
            p == _same_pads(in_shape[j], pool[j], strides[j]) for j, p in enumerate(pads)
        ):
            return "same"
        raise UnsupportedError(f"pooling pads {pads} (supported: none, or Keras 'same' not counting pads)")

    def _pool(self, n: Node, kind: str) -> None:
        from hgq import layers as HL

        pool = tuple(n.attrs["pool"])
        strides = tuple(n.attrs.get("strides", pool))
        if kind == "Avg" and self.grids[n.output] is None:
            raise UnsupportedError("an average over windows that are not a power of two (apply the policy)")
        if len(pool) not in (1, 2):
            raise UnsupportedError(f"{len(pool)}-D pooling")
        padding = self._pool_padding(n, pool, strides)
        x, iq = self.take(n.inputs[0], n)
        cls = getattr(HL, f"Q{kind}Pool{len(pool)}D")
        layer = cls(pool, strides=strides, padding=padding, name=_ident(n.name, self.used), **iq)
        self.out(n, layer(x), layer)

    def op_maxpool(self, n: Node) -> None:
        self._pool(n, "Max")

    def op_avgpool(self, n: Node) -> None:
        self._pool(n, "Avg")

    def _global(self, n: Node, kind: str) -> None:
        from hgq import layers as HL

        nd = len(self.shapes[n.inputs[0]]) - 1
        if kind == "Avg" and self.grids[n.output] is None:
            raise UnsupportedError("a global average over a count that is not a power of two (apply the policy)")
        if nd not in (1, 2):
            raise UnsupportedError(f"global pooling over {nd} axes")
        x, iq = self.take(n.inputs[0], n)
        layer = getattr(HL, f"QGlobal{kind}Pool{nd}D")(name=_ident(n.name, self.used), **iq)
        self.out(n, layer(x), layer)

    def op_global_avgpool(self, n: Node) -> None:
        self._global(n, "Avg")

    def op_global_maxpool(self, n: Node) -> None:
        self._global(n, "Max")

    def op_flatten(self, n: Node) -> None:
        layer = self.k.layers.Flatten(name=_ident(n.name, self.used))
        self.out(n, layer(self.get(n.inputs[0])), layer)

    def op_reshape(self, n: Node) -> None:
        layer = self.k.layers.Reshape(tuple(n.attrs["shape"]), name=_ident(n.name, self.used))
        self.out(n, layer(self.get(n.inputs[0])), layer)

    def reindex(self, x, in_shape, fn, name: str, out_shape) -> Any:
        """A 0/1 QDense re-indexing the flattened tensor (out = fn(in), every output one input or 0)."""
        from hgq.layers import QDense

        n_in = int(np.prod(in_shape))
        eye = np.eye(n_in).reshape((n_in, *in_shape))
        sel = np.stack([fn(e) for e in eye]).reshape(n_in, -1)
        if len(in_shape) > 1:
            x = self.k.layers.Flatten(name=_ident(f"{name}_flat", self.used))(x)
        layer = QDense(
            sel.shape[1],
            use_bias=False,
            enable_iq=False,
            enable_ebops=False,
            kq_conf=conf(Fixed(False, 1, 0), "weight"),
            name=_ident(name, self.used),
        )
        y = layer(x)
        self.assign.append((layer, {"kernel": sel}))
        if len(out_shape) > 1:
            y = self.k.layers.Reshape(tuple(out_shape), name=_ident(f"{name}_shape", self.used))(y)
        return y

    def op_transpose(self, n: Node) -> None:
        perm = tuple(n.attrs["perm"])
        shape = self.shapes[n.inputs[0]]
        self.val[n.output] = self.reindex(
            self.get(n.inputs[0]), shape, lambda a: np.transpose(a, perm), n.name, self.shapes[n.output]
        )

    def op_pad(self, n: Node) -> None:
        pads = [tuple(p) for p in n.attrs["pads"]]
        shape = self.shapes[n.inputs[0]]
        self.val[n.output] = self.reindex(
            self.get(n.inputs[0]), shape, lambda a: np.pad(a, [*pads, (0, 0)]), n.name, self.shapes[n.output]
        )

    def _merge(self, n: Node) -> None:
        from hgq import layers as HL

        a, b = (self.shapes[t] for t in n.inputs)
        if a != b:
            raise UnsupportedError(f"inputs of shapes {a} and {b} (broadcasting is not lowered: give both one shape)")
        layer = getattr(HL, MERGES[n.op])(enable_iq=False, enable_ebops=False, name=_ident(n.name, self.used))
        self.out(n, layer([self.get(t) for t in n.inputs]), layer)

    op_add = op_sub = op_mul = op_max = _merge

    def op_concat(self, n: Node) -> None:
        shapes = {self.shapes[t] for t in n.inputs}
        if len(shapes) != 1:
            raise UnsupportedError(
                f"a concatenation of unequal shapes {sorted(shapes)} (da4ml cannot): feed it to a dense "
                "(it is then split), or make the parts equal"
            )
        axis = int(n.attrs.get("axis", -1))
        layer = self.k.layers.Concatenate(axis=axis if axis < 0 else axis + 1, name=_ident(n.name, self.used))
        self.out(n, layer([self.get(t) for t in n.inputs]), layer)


def lower(graph: Graph, name: str) -> Lowered:
    """The hgq2 Keras model of a fixed-point graph (see the module docstring)."""
    g = expand(graph)
    b = _Builder(g, name)
    model, fmt = b.build()
    inp = g.inputs[0]
    grid = Grid.uniform(int(np.prod(inp.shape)), fmt.with_modes("TRN", "WRAP"))
    return Lowered(model, g, grid, tuple(inp.shape), b.tensor_layers)


def check(graph: Graph, low: Lowered, x: np.ndarray) -> int:
    """The golden model (float64) of the lowered model against `graph.evaluate` on x, exactly; a
    difference is a MismatchError naming the first graph tensor that differs. Returns len(x)."""
    from trigger_ml.train.golden import QuantizedModel  # keras, only when a model is checked

    golden = QuantizedModel(low.model)
    want = graph.evaluate(x)[0].reshape(len(x), -1)
    got = golden.predict(x)
    if got.shape == want.shape and np.array_equal(got, want):
        return len(x)
    first = _first_diverging(graph, low, golden, x)
    bad = np.flatnonzero(np.any(got != want, axis=1)) if got.shape == want.shape else np.arange(len(x))
    i = int(bad[0])
    raise MismatchError(
        f"the hgq2 lowering differs from the import graph on {len(bad)}/{len(x)} events"
        + (f"; first differing tensor {first!r}" if first else "")
        + f"; first event {i}: expected {want[i][:8].tolist()}, got {got[i][:8].tolist() if got.shape == want.shape else got.shape}",
        "report the graph (trigger_ml.interop.ir.save): a lowering rule is wrong",
    )


def _first_diverging(graph: Graph, low: Lowered, golden, x: np.ndarray) -> str | None:
    import keras

    env = graph.evaluate(x, keep=True)
    names = [t for t in env if t in low.tensor_layers]
    m64 = golden.float64
    probe = keras.Model(m64.inputs, [m64.get_layer(low.tensor_layers[t]).output for t in names])
    outs = probe.predict(x, verbose=0, batch_size=8192)
    outs = outs if isinstance(outs, list) else [outs]
    for t, y in zip(names, outs):
        if not np.array_equal(np.asarray(y, np.float64).reshape(env[t].shape), env[t]):
            return t
    return None
