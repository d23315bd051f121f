"""The one function every front end calls: an import graph -> an imported run directory.

    import_graph(graph, out, reference_level=None, policy_options=None, foreign_files=(), summary=None)

1. the precision policy (`policy.apply`) makes the graph fixed point (decisions, exact or fidelity);
2. `lower` builds the hgq2 Keras model; `lower.check` proves it equal to the post-policy graph on
   `N_CHECK` fuzzed words of the input format (`vectors.extreme_inputs`) - a difference is a
   MismatchError naming the first differing tensor;
3. the source semantics on the same inputs: the pre-policy graph (`Graph.evaluate`) must equal the
   model exactly when the policy approximated nothing, else the fidelity figures are measured
   (max error / output range, argmax agreement) against the tolerances in `policy_options`; the
   front end's own `reference_level` (e.g. qonnx's executor, onnxruntime: an object with `name`
   and `predict(x)` taking the user's layout) likewise, exact when both the policy and the level
   are (`reference_level.exact`, default: the policy's verdict);
4. the run directory is written atomically (`rundir`): model.keras, card.yaml, metrics.json (input
   shape and grid, the summary), foreign/ (`source/` and `fixed/`: the saved graphs before and
   after the policy; the foreign files; inputs.npy, outputs.npy; info.json: the levels verify runs,
   their checks and tolerances, the user's input layout).

What a front end puts in the Graph: `ir` module docstring (channels-last shapes, explicit pads,
`Input.q` when the source quantizes its input, `Input.layout` when the user's arrays are not
channels-last).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.atomic import atomic_dir
from trigger_ml.errors import SchemaError, require_equal
from trigger_ml.interop import ir
from trigger_ml.interop import lower as Lw
from trigger_ml.interop import policy as P
from trigger_ml.interop.reference import fidelity
from trigger_ml.interop.rundir import card_dict, write_card_and_metrics
from trigger_ml.layout import RunDir
from trigger_ml.vectors import extreme_inputs

log = logging.getLogger(__name__)
N_CHECK = 2000  # fuzzed words of the input format checked at import
SOURCE, FIXED = "source", "fixed"  # the saved graphs in foreign/


def user_layout(inp: ir.Input) -> dict[str, Any]:
    """How the user's arrays map to the model's input (info.json `input`)."""
    perm = ir.layout_perm(inp.layout, len(inp.shape))
    user = list(inp.shape) if perm is None else [inp.shape[perm.index(j)] for j in range(len(perm))]
    return {"name": inp.name, "layout": inp.layout, "shape": list(inp.shape), "user_shape": user, "perm": perm}


def to_user(x: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    """Model-layout (channels-last) inputs as the user's layout."""
    x = np.asarray(x).reshape(len(x), *layout["shape"])
    perm = layout.get("perm")
    if perm:
        x = np.transpose(x, (0, *[list(perm).index(j) + 1 for j in range(len(perm))]))
    return x


def _finite_weights(graph: ir.Graph, where: str) -> None:
    """NaN or infinite weights are a broken file, said once (thresholds may be infinite: never reached)."""
    bad = [
        f"node {n.name!r} ({n.op}) weight {k!r}: {int(np.sum(~np.isfinite(w)))} of {w.size}"
        for n in graph.nodes
        for k, w in n.weights.items()
        if k != "thresholds" and np.asarray(w).dtype.kind == "f" and not np.all(np.isfinite(w))
    ]
    if bad:
        raise SchemaError(
            f"{where}: NaN or infinite weights: " + "; ".join(bad[:5]),
            "retrain or re-export the model: every weight must be a finite number",
        )


def import_graph(
    graph: ir.Graph,
    out: str | Path,
    *,
    reference_level: Any = None,
    policy_options: P.PolicyOptions | None = None,
    foreign_files: tuple[Path, ...] | list[Path] = (),
    summary: dict[str, Any] | None = None,
    name: str | None = None,
    source: Path | None = None,
) -> dict[str, Any]:
    """Import `graph` into the run directory `out` (see the module docstring); returns the summary
    (also in metrics.json `import`): input format, policy decisions, exact or fidelity, tolerance,
    the import's checks."""
    opts = policy_options or P.PolicyOptions()
    graph.check()
    where = str(source or (foreign_files[0] if foreign_files else graph.name))  # the user's file, in errors
    _finite_weights(graph, where)
    try:
        res = P.apply(graph, opts)
    except P.RangeError as exc:
        raise P.RangeError(f"{where}: {exc.what}", exc.fix) from None
    name = name or _identifier(graph.name)
    low = Lw.lower(res.graph, name)
    x = extreme_inputs(low.input_grid, low.input_shape, n_random=N_CHECK, seed=1)
    Lw.check(res.graph, low, x)
    from trigger_ml.train.golden import QuantizedModel  # keras, only once a model is lowered

    y = QuantizedModel(low.model).predict(x)
    check = "exact" if res.exact else "fidelity"
    tol = {"max_rel_error": opts.max_rel_error, "argmax_agreement": opts.argmax_agreement}
    layout = {**user_layout(graph.inputs[0]), "format": str(res.graph.inputs[0].q.uniform())}
    levels = [{"name": "import", "kind": "graph", "graph": FIXED, "check": "exact"}]
    checks = {"import": {"compared": len(x), "mismatched": 0, "against": "post-policy graph"}}
    y_src = graph.evaluate(x)[0].reshape(len(x), -1)
    checks["source"] = _compare(y, y_src, check, tol, "the source graph (before the policy)")
    levels.append({"name": "source", "kind": "graph", "graph": SOURCE, "check": check})
    y_ref = y_src
    if reference_level is not None:
        ref_check = "exact" if res.exact and getattr(reference_level, "exact", True) else "fidelity"
        y_ref = np.asarray(reference_level.predict(to_user(x, layout)), np.float64).reshape(len(x), -1)
        checks[reference_level.name] = _compare(y, y_ref, ref_check, tol, reference_level.name)
        levels.append({"name": reference_level.name, "kind": "foreign", "check": ref_check})
    decisions = res.summary()
    info = {
        "kind": graph.source or "graph",
        "reference": reference_level.name if reference_level is not None else "source",
        "check": check,
        "tolerance": tol,
        "levels": levels,
        "input": layout,
        "policy": {"options": {k: getattr(opts, k) for k in opts.__dataclass_fields__}, "decisions": decisions},
        "import_check": checks,
    }
    onnx_files = [Path(p).name for p in foreign_files if Path(p).suffix == ".onnx"]
    if onnx_files:
        info["file"] = onnx_files[0]
    out_summary = {
        "source": graph.source,
        "kind": info["kind"],
        "input_format": str(res.graph.inputs[0].q.uniform()),
        "input_shape": list(low.input_shape),
        "input_layout": layout,
        "n_inputs": int(np.prod(low.input_shape)),
        "n_outputs": int(y.shape[1]),
        "exact": res.exact,
        "check": check,
        "reference": info["reference"],
        "tolerance": tol,
        "policy": decisions,
        "import_check": checks,
        "layers": len(low.model.layers),
        **(summary or {}),
    }
    _write(Path(out), low, graph, res.graph, x, y_ref, info, out_summary, tuple(Path(p) for p in foreign_files), name)
    return out_summary


def _compare(y: np.ndarray, y_ref: np.ndarray, check: str, tol: dict[str, float], what: str) -> dict[str, Any]:
    if check == "exact":
        require_equal(
            y,
            y_ref,
            f"the lowered model differs from {what}",
            "report the model: the import graph or a lowering rule is wrong",
        )
        return {"compared": len(y), "mismatched": 0, "against": what}
    fig = fidelity(y, y_ref)
    out = {"compared": len(y), "against": what, **fig}
    if fig["max_rel_error"] > tol["max_rel_error"] or fig["argmax_agreement"] < tol["argmax_agreement"]:
        log.warning("fidelity against %s below the gates: %s (tolerance %s)", what, fig, tol)
        out["gates_passed"] = False
    else:
        out["gates_passed"] = True
    return out


def _identifier(text: str) -> str:
    import re

    name = re.sub(r"\W", "_", text, flags=re.ASCII).strip("_")[:60] or "imported"
    return name if name[0].isalpha() else f"m_{name}"[:64]


def _write(
    out: Path,
    low: Lw.Lowered,
    source: ir.Graph,
    fixed: ir.Graph,
    x: np.ndarray,
    y_ref: np.ndarray,
    info: dict[str, Any],
    summary: dict[str, Any],
    files: tuple[Path, ...],
    name: str,
) -> None:
    with atomic_dir(out, kind=RunDir.OUTPUT) as tmp:
        rd = RunDir(tmp)
        low.model.save(rd.model)
        src = Path(source.source or name)
        card = card_dict(name, low.describe(), src, info["kind"])
        write_card_and_metrics(rd, card, list(low.input_shape), low.input_grid, summary)
        f = rd.foreign
        f.root.mkdir()
        ir.save(source, f.root / SOURCE)
        ir.save(fixed, f.root / FIXED)
        for p in files:
            shutil.copyfile(p, f.file(p.name))
        info["files"] = sorted(p.name for p in f.root.iterdir())
        np.save(f.inputs, x)
        np.save(f.outputs, y_ref)
        f.info.write_text(json.dumps(info, indent=1, default=_jsonable))


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return v.item()
    return str(v)
