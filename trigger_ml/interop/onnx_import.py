"""QONNX and float ONNX -> an imported run directory, through the import graph (`ir`).

The (Q)ONNX chain is read into steps (`graph.read_graph`: MLPs), turned into an `ir.Graph`
(`steps_to_graph`) and given to `imported.import_graph`, which applies the precision policy
(`policy`), lowers (`lower`), checks, and writes the run. The foreign executor is one more
reference level: qonnx's executor for QONNX (exact: the graph is fixed point end to end),
onnxruntime for float ONNX (fidelity: the policy rounds weights and activations).

Options of the float policy (`FloatPolicy` = `policy.PolicyOptions`): input format (default
fixed<16,6>), weight bits (16, sign included, per tensor), activation fraction bits (10), the
fidelity tolerances.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from trigger_ml.errors import SchemaError
from trigger_ml.fixed import Fixed
from trigger_ml.interop import graph as G
from trigger_ml.interop import ir
from trigger_ml.interop.imported import import_graph
from trigger_ml.interop.policy import PolicyOptions
from trigger_ml.interop.reference import OrtSession, QonnxExecutor
from trigger_ml.interop.rundir import model_name

log = logging.getLogger(__name__)
FloatPolicy = PolicyOptions
FLOAT32_EXACT_BITS = 24  # qonnx's executor and onnxruntime compute in float32


def parse_format(text: str) -> Fixed:
    """`fixed<W,I>` or `ufixed<W,I>` (I includes the sign bit, as in ap_fixed), rounding RND, SAT."""
    return Fixed.parse(text).with_modes("RND", "SAT")


def load_onnx(src: Path):
    import onnx

    try:
        model = onnx.load(src)
    except Exception as exc:
        raise SchemaError(f"{src}: cannot read it as ONNX ({type(exc).__name__}: {exc})") from exc
    return G.normalise(model)


def steps_to_graph(g: G.Graph, name: str, source: str) -> ir.Graph:
    """The import graph of a chain of steps. A leading Quant is the input's format."""
    steps = list(g.steps)
    q_in = None
    if steps and isinstance(steps[0], G.Quant):
        q_in = ir.Quant.of(steps.pop(0).fmt)
    nodes, cur = [], g.input_name
    for j, s in enumerate(steps):
        out = f"t{j}"
        if isinstance(s, G.Dense):
            nodes.append(ir.Node("dense", f"dense_{j}", [cur], out, {}, {"kernel": s.w, "bias": s.b}))
        elif isinstance(s, G.Relu):
            nodes.append(ir.Node("relu", f"relu_{j}", [cur], out))
        elif isinstance(s, G.Quant):
            nodes.append(ir.Node("quant", f"quant_{j}", [cur], out, {"q": ir.Quant.of(s.fmt)}))
        elif isinstance(s, G.Bipolar):
            nodes.append(ir.Node("bipolar", f"bipolar_{j}", [cur], out, {"scale": float(s.scale)}))
        cur = out
    return ir.Graph(name, [ir.Input(g.input_name, (g.n_in,), q_in)], nodes, [cur], source)


def _accumulator_bits(graph: ir.Graph) -> list[tuple[str, int]]:
    """Dense outputs wider than float32 holds exactly (qonnx's executor would round them)."""
    from trigger_ml.fixed import needed_integer
    from trigger_ml.interop import analysis as A

    b, grids = A.bounds(graph), A.grids(graph)
    out = []
    for n in graph.nodes:
        if n.op == "dense" and grids[n.output] is not None:
            lo, hi = b[n.output]
            bits = needed_integer(float(lo.min()), float(hi.max()), grids[n.output], True) + grids[n.output] + 1
            if bits > FLOAT32_EXACT_BITS:
                out.append((n.name, bits))
    return out


def _import(src: Path, out: Path, kind: str, policy: PolicyOptions) -> dict[str, Any]:
    import onnx

    model = load_onnx(src)
    steps = G.read_graph(model)
    if kind == "onnx" and any(isinstance(s, (G.Quant, G.Bipolar)) for s in steps.steps):
        raise SchemaError(f"{src}: has quantizers but no QONNX domain", "import it as QONNX")
    if kind == "qonnx" and not (steps.steps and isinstance(steps.steps[0], G.Quant)):
        from trigger_ml.errors import UnsupportedError

        raise UnsupportedError(
            "the graph input is not quantized (no Quant node on it)",
            "export the model with an input quantizer, or import it as float ONNX with --input-format",
        )
    graph = steps_to_graph(steps, model_name(src), f"{kind} {src.name}")
    if kind == "qonnx":
        over = _accumulator_bits(graph)
        if over:
            raise SchemaError(
                f"{src}: accumulators of {over} need more than {FLOAT32_EXACT_BITS} bits, where qonnx's "
                "float32 executor is no longer exact",
                "reduce the bit widths; the exact check cannot hold",
            )
    level = QonnxExecutor(model) if kind == "qonnx" else OrtSession(model)
    level.exact = kind == "qonnx"
    with tempfile.TemporaryDirectory(prefix=".tml-tmp-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(model, path)
        return import_graph(
            graph,
            out,
            reference_level=level,
            policy_options=policy,
            foreign_files=(path,),
            summary={"source": str(src), "kind": kind},
            name=model_name(src),
        )


def import_qonnx(src: Path, out: Path) -> dict[str, Any]:
    """Import a QONNX file; the lowered model must equal qonnx's executor exactly."""
    return _import(src, out, "qonnx", PolicyOptions())


def import_float_onnx(src: Path, out: Path, policy: PolicyOptions = PolicyOptions()) -> dict[str, Any]:
    """Import a float ONNX file under the precision policy; fidelity against onnxruntime."""
    return _import(src, out, "onnx", policy)
