"""`verify` as one function: exact check of every level, first diverging layer and reproducer on
a mismatch, and physics fidelity; the command line and users' CI call this.

The budget is the report stage's verdict (`trigger_ml.report.budget.verdict`, with the best
figures available); `trigger-ml verify` and `trigger-ml run` add it to this outcome's gates
(`Outcome.gates`), so both give the same verdict for the same firmware.

Exit codes (`Outcome.exit_code`): 0 all pass, 1 a level mismatches, 2 a fidelity threshold or
a budget is exceeded (and no mismatch); usage and tool errors raise `TriggerMLError` (3).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.atomic import atomic_file
from trigger_ml.compile import manifest
from trigger_ml.config import load_card
from trigger_ml.interop.reference import fidelity as foreign_fidelity
from trigger_ml.layout import FirmwareDir
from trigger_ml.verify import exact
from trigger_ml.verify.gates import Check, fidelity_of
from trigger_ml.verify.junit import Case
from trigger_ml.verify.levels import foreign_reference
from trigger_ml.verify.trace import LayerDiff, first_diverging_layer

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    fw_dir: Path
    exact: list[exact.PairResult]
    gates: list[Check] = field(default_factory=list)
    physics: dict[str, Any] = field(default_factory=dict)
    divergence: LayerDiff | None = None
    diagnosis: str = ""
    reproducer: Path | None = None

    @property
    def mismatched(self) -> list[exact.PairResult]:
        return [r for r in self.exact if not r.ok]

    @property
    def failed_gates(self) -> list[Check]:
        return [c for c in self.gates if c.ok is False]

    @property
    def exit_code(self) -> int:
        return 1 if self.mismatched else 2 if self.failed_gates else 0

    def cases(self) -> list[Case]:
        out = []
        for r in self.exact:
            fail = None
            if not r.ok:
                fail = (
                    f"{r.mismatched}/{r.compared} events differ; first event {r.first.get('index')}: "
                    f"expected {r.first.get('expected')} got {r.first.get('got')}"
                )
                if self.diagnosis:
                    fail += f"; {self.diagnosis}"
            out.append(Case(r.name(), r.seconds, fail))
        for c in self.gates:
            out.append(Case(c.name, 0.0, c.message() if c.ok is False else None, c.message() if c.ok is None else None))
        return out


def verify_firmware(
    fw_dir: str | Path,
    ds,
    n_fuzz: int = 1000,
    rtl: bool = True,
    check_fidelity: bool = True,
    seed: int = 0,
    rebuild: bool = False,
) -> Outcome:
    """Verify the compiled model in `fw_dir`: every level (C simulation, da4ml software model, RTL
    simulation with `rtl`, an imported model's own reference) against the quantized Keras model,
    exactly, on the windows of `ds` (a `Dataset`, or None) and `n_fuzz` random words of the input
    format plus its extremes; then, with `check_fidelity`, physics against the float twin. Returns
    the `Outcome` (per-pair counts, gates, diagnosis and reproducer of a mismatch, `exit_code`).

    The firmware's C++ runs (its libraries are loaded): its sources must match the manifest, else
    this is refused before anything is built or loaded, unless `rebuild` (then that C++ is compiled
    and run as it now stands, said in the log)."""
    fw_dir = Path(fw_dir)
    card = load_card(FirmwareDir(fw_dir).card)
    m = manifest.read(fw_dir)
    # before anything is read through it: links leaving the directory are refused, and (unless rebuild)
    # a changed tree, before any level is built or loaded (check_sources checks the links first)
    if rebuild:
        manifest.check_links(fw_dir)
    else:
        manifest.check_sources(fw_dir, m)
    if "converter" in m:  # hls4ml's own converter: measured, never called exact
        return Outcome(fw_dir, [], _stock_checks(fw_dir, n_fuzz, seed, rebuild))
    sets = exact.inputs_for(fw_dir, ds, n_fuzz, seed)  # the data checked before any level is built
    levels = exact.load_levels(fw_dir, rtl_sim=rtl, rebuild=rebuild)
    y_ref: dict[str, np.ndarray] = {}
    out = Outcome(fw_dir, exact.compare(levels, sets, y_ref))
    if out.mismatched:
        _diagnose(out, levels, sets, rebuild)
    if check_fidelity and card.task == "imported":
        out.gates += _foreign_fidelity(fw_dir, sets["fuzzed"], y_ref["fuzzed"])
    elif check_fidelity and ds is not None:
        q_score = y_ref["data"][:, 0]
        checks, out.physics = fidelity_of(fw_dir, card, q_score, ds)
        out.gates += checks
    return out


def _foreign_fidelity(fw_dir: Path, x: np.ndarray, y_fixed: np.ndarray) -> list[Check]:
    """An imported model's references whose check is fidelity (the source graph when the precision
    policy approximated a float op, onnxruntime for float ONNX): the fixed-point model against each,
    with the tolerances chosen at import; exact references are levels of the exact check instead."""
    ref = foreign_reference(fw_dir)
    if ref is None:
        return []
    levels, info = ref
    tol = info["tolerance"]
    out = []
    for name, level, check in levels:
        if check != "fidelity":
            continue
        fig = foreign_fidelity(y_fixed, level.predict(x))
        src = f"fixed point vs {name} on {len(x)} fuzzed inputs"
        suffix = "" if name == info.get("reference") else f" ({name})"
        out += [
            Check(
                f"fidelity: max error / output range{suffix}",
                fig["max_rel_error"] <= tol["max_rel_error"],
                fig["max_rel_error"],
                tol["max_rel_error"],
                src,
            ),
            Check(
                f"fidelity: argmax agreement{suffix}",
                fig["argmax_agreement"] >= tol["argmax_agreement"],
                fig["argmax_agreement"],
                tol["argmax_agreement"],
                src,
            ),
        ]
    return out


def _stock_checks(fw_dir: Path, n_fuzz: int, seed: int, rebuild: bool = False) -> list[Check]:
    """A firmware from hls4ml's own converter against the source's reference on the import's inputs
    (the user's data when the front end gave them, else fuzzed words): the match fraction and the
    first diverging layer (information), and the fidelity gates."""
    from trigger_ml.compile.stock import LABEL
    from trigger_ml.interop.stock import measure
    from trigger_ml.verify.levels import csim

    levels, info = foreign_reference(fw_dir)  # checked against the manifest, inputs.npy included
    saved = FirmwareDir(fw_dir).foreign.inputs
    x = np.load(saved, allow_pickle=False) if saved.exists() else exact.inputs_for(fw_dir, None, n_fuzz, seed)["fuzzed"]
    name, level, _ = levels[0]
    y_ref, y = level.predict(x), csim(fw_dir, "model", rebuild).predict(x)
    fig = measure(y, y_ref)
    tol = info["tolerance"]
    src = f"{LABEL}: C simulation vs {name} on the {len(x)} inputs of the import"
    layer = _first_far_layer(fw_dir, level, x, y, y_ref, tol["max_rel_error"], rebuild)
    return [
        Check(f"{LABEL}: match fraction", None, fig["match_fraction"], 1.0, src),
        Check(f"{LABEL}: first diverging layer", None, None, None, layer or "n/a (no layer-wise reference)"),
        Check(
            "fidelity: max error / output range",
            fig["max_rel_error"] <= tol["max_rel_error"],
            fig["max_rel_error"],
            tol["max_rel_error"],
            src,
        ),
        Check(
            "fidelity: argmax agreement",
            fig["argmax_agreement"] >= tol["argmax_agreement"],
            fig["argmax_agreement"],
            tol["argmax_agreement"],
            src,
        ),
    ]


def _first_far_layer(fw_dir: Path, level, x, y, y_ref, tol: float, rebuild: bool = False) -> str | None:
    """The first hls4ml layer (in order) whose traced output, on the worst event, is further from the
    same-named node of the source graph than `tol` of its range (None: no graph reference)."""
    from trigger_ml.compile import manifest as M
    from trigger_ml.verify.trace import csim_layer_outputs

    graph = getattr(level, "graph", None)
    if graph is None:
        return None
    i = int(np.argmax(np.abs(y - y_ref).max(axis=1)))
    env = graph.evaluate(x[i : i + 1], keep=True)
    by_name = {n.name: env[n.output][0] for n in graph.nodes}
    traced = csim_layer_outputs(fw_dir, x[i], rebuild)
    for row in M.read(fw_dir)["layers"]:
        ref, got = by_name.get(row["layer"]), traced.get(row["layer"])
        if ref is None or got is None or np.size(ref) != np.size(got):
            continue
        span = max(float(np.ptp(ref)), float(np.max(np.abs(ref))), 1e-30)
        if float(np.max(np.abs(np.ravel(got) - np.ravel(ref)))) > tol * span:
            return row["layer"]
    return None


def _diagnose(out: Outcome, levels, sets, rebuild: bool = False) -> None:
    """Name the first diverging layer (C simulation) or say why there is none; save a reproducer."""
    bad = out.mismatched
    r = next((b for b in bad if b.level == "csim"), bad[0])
    x = sets[r.inputs][r.first["index"]]
    if r.level == "csim":
        try:
            out.divergence = first_diverging_layer(out.fw_dir, levels[exact.REFERENCE].float64, x, rebuild)
        except (OSError, AttributeError) as exc:  # an emulator built without trace storage
            out.diagnosis = f"no layer trace: {exc}"
        if out.divergence is not None:
            out.diagnosis = out.divergence.describe()
        elif not out.diagnosis:
            out.diagnosis = "every traced layer agrees: the difference arises after the last traced layer"
    elif r.level == "cmssw":
        csim_ok = all(b.level != "csim" for b in bad)
        out.diagnosis = "the CMSSW plugin differs from the quantized model" + (
            "; the C simulation is exact on the same inputs, so the fault is in the plugin's payload conversion "
            "(emulator/<model>_plugin.cpp)"
            if csim_ok
            else ""
        )
    elif r.level not in ("da4ml", "rtl"):  # an imported model's own reference (qonnx's executor)
        out.diagnosis = (
            f"output element {r.first.get('output_index')} differs between the imported model's own "
            f"reference ({r.level}) and its lowering to hgq2 layers (model.keras)"
        )
    else:
        csim_ok = all(b.level != "csim" for b in bad)
        out.diagnosis = (
            f"output element {r.first.get('output_index')} differs; da4ml traces the model into one "
            f"graph without layer boundaries"
            + (
                "; the C simulation is exact on the same inputs, so the fault is below hls4ml's layers"
                if csim_ok
                else ""
            )
        )
    rep = FirmwareDir(out.fw_dir).reproducer(r.level, r.inputs)
    rep.parent.mkdir(exist_ok=True)
    buf = io.BytesIO()
    np.savez(
        buf,
        inputs=np.asarray(x)[None],
        expected=np.array(r.first["expected"]),
        got=np.array(r.first["got"] if r.first["got"] is not None else []),
        level=r.level,
        layer=out.divergence.layer if out.divergence else "",
        diagnosis=out.diagnosis,
    )
    with atomic_file(rep) as tmp:
        Path(tmp).write_bytes(buf.getvalue())
    out.reproducer = rep
