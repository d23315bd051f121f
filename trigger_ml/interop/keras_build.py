"""A Keras-family model (`keras_files.KModel`) -> the import representation (`ir.Graph`), through
a table of layer handlers (class name -> handler), shared by the Keras 2/3, QKeras and HGQ v1
front ends.

A handler `(c: Call, xs: list[str] | None) -> str | None` reads one call of one layer: it checks
the layer's config first (every problem recorded with `c.unsupported` / `c.schema`, all layers
checked), then, when its inputs are known (`xs` not None), emits nodes with `c.emit` and returns
its output tensor. Each emitted node is run once on a zero event, so every tensor's shape is the
one `ir.Graph.evaluate` gives (no second shape rule to keep in step), and a weight that does not
fit its input is reported where it is read (`c.weight`).

Tensor and node names: a layer's call k writes `<layer>` (k = 0) or `<layer>#k`, extra nodes of the
same call `<layer>/<suffix>`. Problems become one error: SchemaError when the files contradict
themselves (a weight missing or of the wrong shape, a dangling input), else UnsupportedError,
each line with the nearest supported alternative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.errors import SchemaError, UnsupportedError
from trigger_ml.interop import limits
from trigger_ml.interop.ir import OPS, Graph, Input, Node, Quant
from trigger_ml.interop.keras_files import KLayer, KModel, Ref

Handler = Callable[["Call", "list[str] | None"], "str | None"]


@dataclass
class Step:
    """One node of an activation or quantizer: op, attributes, and weights (or a function of the
    channel count giving them)."""

    op: str
    attrs: dict[str, Any] = field(default_factory=dict)
    weights: Callable[[int], dict[str, np.ndarray]] | None = None
    suffix: str = ""


@dataclass
class Problem:
    text: str
    schema: bool = False


class Builder:
    def __init__(
        self,
        model: KModel,
        handlers: dict[str, Handler],
        alternatives: dict[str, str],
        supported: str,
        modules: tuple[str, ...] = (),
    ):
        self.model = model
        self.modules = modules  # the packages a layer's `module` may name (when the file writes one)
        self.handlers = handlers
        self.alternatives = alternatives
        self.supported = supported
        self.nodes: list[Node] = []
        self.inputs: list[Input] = []
        self.zeros: dict[str, np.ndarray] = {}
        self.problems: list[Problem] = []
        self.notes: list[str] = []

    # ------------------------------------------------------------------ the walk

    def run(self) -> Graph:
        refs: dict[Ref, str | None] = {}
        pending = [(layer, j) for layer in self.model.layers for j in range(max(1, len(layer.calls)))]
        while pending:
            ready = [(layer, j) for layer, j in pending if all(r in refs for r in self._call_inputs(layer, j))]
            if not ready:
                for layer, j in pending:
                    missing = [r for r in self._call_inputs(layer, j) if r not in refs]
                    self.problems.append(
                        Problem(f"layer {layer.name!r}: its input {missing[0][0]!r} is produced by no layer", True)
                    )
                break
            for layer, j in ready:
                pending.remove((layer, j))
                ins = [refs[r] for r in self._call_inputs(layer, j)]
                out = self._call(layer, j, None if any(x is None for x in ins) else ins)  # type: ignore[arg-type]
                refs[(layer.name, j, 0)] = out
        outputs = [refs.get(r) for r in self.model.outputs]
        for r in self.model.outputs:
            if r not in refs:
                self.problems.append(Problem(f"output {r[0]!r} is not a layer of the model", True))
        self.raise_problems()
        graph = Graph(self.model.name, self.inputs, self.nodes, [o for o in outputs if o], notes=list(self.notes))
        graph.check()
        return graph

    def _call_inputs(self, layer: KLayer, j: int) -> list[Ref]:
        return layer.calls[j] if j < len(layer.calls) else []

    def _call(self, layer: KLayer, j: int, xs: list[str] | None) -> str | None:
        c = Call(self, layer, j)
        handler = self.handlers.get(layer.cls)
        if layer.module and self.modules and not layer.module.startswith(self.modules):
            hint = "trigger-ml compiles hgq2 models directly" if layer.module.startswith("hgq") else None
            c.unsupported(f"a class from {layer.module!r} (not a layer this front end reads)", hint)
            return None
        if layer.cls == "InputLayer":
            return c.input()
        if handler is None:
            c.unsupported(f"{layer.cls} is not supported", self.alternatives.get(layer.cls))
            return None
        before = len(self.problems)
        out = handler(c, xs)
        return out if len(self.problems) == before else None

    def raise_problems(self) -> None:
        if not self.problems:
            return
        files = ", ".join(str(p) for p in self.model.files)
        lines = "\n  - ".join(p.text for p in self.problems)
        n = len(self.problems)
        if any(p.schema for p in self.problems):
            fix = "give the model and weights files as Keras wrote them (the weights of this model)"
            if not all(p.schema for p in self.problems):
                fix += f". Supported {self.supported}"
            raise SchemaError(f"{files}: {n} problem(s) reading the model:\n  - {lines}", fix)
        raise UnsupportedError(
            f"{files}: {n} unsupported item(s) in the model:\n  - {lines}", f"supported {self.supported}"
        )

    # ------------------------------------------------------------------ nodes

    def add(self, node: Node) -> str | None:
        try:
            y = OPS[node.op](node, *(self.zeros[t] for t in node.inputs))
        except (ValueError, IndexError) as exc:
            self.problems.append(Problem(f"node {node.name!r} ({node.op}): its inputs do not fit ({exc})", True))
            return None
        self.nodes.append(node)
        self.zeros[node.output] = np.zeros_like(y)
        return node.output


class Call:
    """One call of one layer, as a handler sees it."""

    def __init__(self, b: Builder, layer: KLayer, j: int):
        self.b, self.layer, self.j = b, layer, j
        self.config = layer.config
        self.key = layer.name if j == 0 else f"{layer.name}#{j}"
        self._missing: set[str] = set()

    def __repr__(self) -> str:
        return f"layer {self.layer.name!r} ({self.layer.cls})"

    # problems and notes
    def unsupported(self, text: str, alternative: str | None = None) -> None:
        self.b.problems.append(
            Problem(f"{self!r}: {text}" + (f"; nearest supported: {alternative}" if alternative else ""))
        )

    def schema(self, text: str) -> None:
        self.b.problems.append(Problem(f"{self!r}: {text}", True))

    def note(self, text: str) -> None:
        self.b.notes.append(f"{self.layer.name}: {text}")

    # shapes and nodes
    def shape(self, t: str) -> tuple[int, ...]:
        return tuple(self.b.zeros[t].shape[1:])

    def emit(
        self, op: str, inputs: list[str], suffix: str = "", attrs: dict | None = None, weights: dict | None = None
    ) -> str | None:
        name = base = self.key + (f"/{suffix}" if suffix else "")
        k = 1
        while name in self.b.zeros:  # a layer elsewhere already has this name
            name, k = f"{base}_{k}", k + 1
        return self.b.add(Node(op, name, list(inputs), name, dict(attrs or {}), dict(weights or {})))

    def steps(self, steps: list[Step], x: str | None, own: bool = False) -> str | None:
        """Apply an activation / quantizer plan (`Step`s) after tensor x; `own`: the steps are the
        layer itself (an Activation), so the first node takes the layer's name."""
        for k, s in enumerate(steps):
            if x is None:
                return None
            w = s.weights(self.shape(x)[-1] if self.shape(x) else 1) if s.weights else None
            suffix = "" if own and k == 0 else s.suffix or f"{s.op}{k if k else ''}"
            x = self.emit(s.op, [x], suffix, s.attrs, w)
        return x

    def input(self) -> str | None:
        c = self.config
        shape = c.get("batch_input_shape") or c.get("batch_shape") or c.get("batch_input_shape")
        if not isinstance(shape, (list, tuple)) or len(shape) < 2:
            self.schema(f"no batch_input_shape / batch_shape in its config ({shape!r})")
            return None
        if any(d is None for d in shape[1:]):
            self.unsupported(
                f"input shape {list(shape[1:])} has a free dimension", "a fixed input shape (firmware has fixed ports)"
            )
            return None
        if c.get("sparse") or c.get("ragged"):
            self.unsupported("sparse or ragged input")
            return None
        if any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in shape[1:]):
            self.schema(f"input shape {list(shape[1:])}: every size must be a positive integer")
            return None
        dims = tuple(int(d) for d in shape[1:])
        limits.Budget(self.b.model.files[0]).add(8 * limits.elements(dims), f"input {self.layer.name!r} {list(dims)}")
        self.b.inputs.append(Input(self.layer.name, dims))
        self.b.zeros[self.layer.name] = np.zeros((1, *dims))
        return self.layer.name

    def require(self, *names: str | tuple[str, ...]) -> bool:
        """Whether the layer has these weights (a tuple: any of its spellings); each missing one is
        reported (checked before the shapes are known, so also behind a failed layer)."""
        ok = True
        for n in names:
            alts = (n,) if isinstance(n, str) else n
            if not any(a in self.layer.weights for a in alts) and alts[0] not in self._missing:
                self._missing.add(alts[0])
                self.schema(f"the weights file has no {alts[0]} for it (has {sorted(self.layer.weights) or 'nothing'})")
                ok = False
        return ok

    def weight(self, name: str, shape: tuple[int, ...] | None, *aliases: str) -> np.ndarray | None:
        """The layer's weight `name` (float64), checked against `shape` (None: any)."""
        ws = self.layer.weights
        key = next((k for k in (name, *aliases) if k in ws), None)
        if key is None:
            self.require((name, *aliases))
            return None
        w = np.asarray(ws[key])
        if not np.issubdtype(w.dtype, np.number):
            self.schema(f"{name} is not numeric ({w.dtype})")
            return None
        if shape is not None and tuple(w.shape) != tuple(shape):
            self.schema(f"{name} has shape {tuple(w.shape)} in the weights file, the layer needs {tuple(shape)}")
            return None
        return w.astype(np.float64)


# ----------------------------------------------------------------------------- config helpers


def tuple_of(v: Any, n: int, what: str = "") -> tuple[int, ...]:
    """An int or a list of ints as an n-tuple (Keras writes both)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return (int(v),) * n
    if isinstance(v, (list, tuple)) and len(v) == n and all(isinstance(x, (int, np.integer)) for x in v):
        return tuple(int(x) for x in v)
    raise ValueError(f"{what or 'value'} {v!r} is not {n} integer(s)")


def same_pads(size: tuple[int, ...], window: tuple[int, ...], strides: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """'same' padding as Keras/TF computes it: out = ceil(n / s), total = max((out - 1) s + k - n, 0),
    lo = total // 2 (so an odd total puts the extra zero at the end)."""
    pads = []
    for n, k, s in zip(size, window, strides):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def channel_axis_last(axis: Any, rank: int) -> bool:
    """Whether a Keras axis (batch counted; int or one-element list) is the last axis of a rank-`rank` tensor."""
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            return False
        axis = axis[0]
    return isinstance(axis, int) and (axis == -1 or axis == rank)


def hoist_input_quant(graph: Graph) -> Graph:
    """An input whose only consumer is a `quant` node takes that quantizer as its own format
    (`Input.q`); the node goes, its output is renamed to the input (the graph computes the same)."""
    for inp in graph.inputs:
        users = graph.consumers(inp.name)
        if inp.q is not None or len(users) != 1 or users[0].op != "quant" or users[0].inputs != [inp.name]:
            continue
        node = users[0]
        inp.q = node.attrs["q"]
        graph.nodes.remove(node)
        for n in graph.nodes:
            n.inputs = [inp.name if t == node.output else t for t in n.inputs]
        graph.outputs = [inp.name if t == node.output else t for t in graph.outputs]
        graph.notes.append(f"{inp.name}: input format from {node.name} ({_spell(inp.q)})")
    return graph


def _spell(q: Quant) -> str:
    u = q.uniform()
    return str(u) if u is not None else f"per-element, {q.rounding}/{q.overflow}"


def build(
    model: KModel,
    handlers: dict[str, Handler],
    alternatives: dict[str, str],
    supported: str,
    source: str,
    modules: tuple[str, ...] = (),
) -> Graph:
    graph = Builder(model, handlers, alternatives, supported, modules).run()
    graph.source = source
    return hoist_input_quant(graph)


def describe_files(files: tuple[Path, ...]) -> str:
    return " + ".join(p.name for p in files)
