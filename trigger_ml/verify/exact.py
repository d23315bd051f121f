"""The exact check: every level against the quantized model, raw outputs, exact equality.

Inputs are data windows and fuzzed words of the input format (`vectors.extreme_inputs`). An
imported QONNX model adds its own reference, qonnx's executor, as one more level.
Each pair (reference, level) gives counts of events compared and mismatched, and the first
mismatching event with expected and got.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.compile import manifest
from trigger_ml.config import load_card
from trigger_ml.data.io import check_size
from trigger_ml.errors import SchemaError, TriggerMLError
from trigger_ml.fixed import Grid
from trigger_ml.layout import FirmwareDir
from trigger_ml.progress import task
from trigger_ml.train.models import model_inputs
from trigger_ml.vectors import extreme_inputs
from trigger_ml.verify import levels as L

REFERENCE = "keras"
MAX_FUZZ = 1_000_000  # random input words per check at most (~8 bytes x inputs x levels each in memory)


@dataclass
class PairResult:
    level: str
    inputs: str
    compared: int
    mismatched: int
    seconds: float
    first: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.mismatched == 0 and self.compared > 0

    def name(self) -> str:
        return f"{REFERENCE} == {self.level} on {self.inputs}"


def load_levels(fw_dir: Path, rtl_sim: bool = True, rebuild: bool = False) -> dict[str, L.Level]:
    """Every level of a compiled model directory, the reference first (`rebuild`: C++ sources that
    differ from the manifest are compiled and run, instead of refused)."""
    fw = FirmwareDir(fw_dir)
    m = manifest.read(fw.root)
    out: dict[str, L.Level] = {REFERENCE: L.golden(fw.root), "csim": L.csim(fw.root, "model", rebuild)}
    plugin = L.cmssw(fw.root, rebuild=rebuild)
    if plugin is not None:  # the CMSSW plugin, run as CMSSW runs it
        out["cmssw"] = plugin
    foreign = L.foreign_reference(fw.root)
    for name, level, check in foreign[0] if foreign is not None else []:
        if check == "exact":  # an imported model's own semantics: its graphs, its framework's executor
            out[name] = level
    if m["rtl"]["written"]:
        sw = L.software_model(fw.root)
        out["da4ml"] = sw
        if rtl_sim:
            out["rtl"] = L.rtl_sim(fw.root, sw.comb)
    return out


def inputs_for(fw_dir: Path, ds, n_fuzz: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The input sets of the exact check: the data windows (`data`, when `ds` is given and the model
    reads ECAL windows) and fuzzed words of the input format (`fuzzed`)."""
    fw = FirmwareDir(fw_dir)
    card = load_card(fw.card)
    m = manifest.read(fw.root)
    if not 0 <= n_fuzz <= MAX_FUZZ:
        raise TriggerMLError(
            f"--fuzz {n_fuzz:,} is outside 0 .. {MAX_FUZZ:,}",
            f"use at most {MAX_FUZZ:,} random words per check (run several checks for more)",
        )
    n_in = int(np.prod(m["input_shape"]))
    check_size(n_fuzz, 8 * n_in * 6, "the fuzzed inputs")
    sets = {}
    if ds is not None and card.input != "tensor":  # an imported model reads no ECAL windows
        x = model_inputs(card, ds).astype(np.float64)
        if x.shape[1:] != tuple(m["input_shape"]):
            raise SchemaError(
                f"{ds.meta.get('source', 'the data')}: the data's model inputs have shape {x.shape[1:]}, "
                f"{fw.root} takes {tuple(m['input_shape'])}",
                "verify with data of the window size the model was trained on",
            )
        check_window(fw, ds, m)  # a features model takes any window size: the training data's says
        sets["data"] = x
    sets["fuzzed"] = extreme_inputs(
        Grid.from_json(m["input_grid"]), tuple(m["input_shape"]), n_random=n_fuzz, seed=seed
    )
    return sets


def check_window(fw: FirmwareDir, ds, m: dict[str, Any]) -> None:
    """The data's windows are as large as the ones the model was trained on (the training data's
    `window` in reference/metrics.json): a features model takes any window size, silently wrong."""
    if not fw.metrics.exists():
        return
    manifest.check(fw.root, [fw.metrics.relative_to(fw.root).as_posix()], m)  # read only as compile wrote it
    doc = json.loads(fw.metrics.read_text())
    data = doc.get("data") if isinstance(doc, dict) else None
    trained = data.get("window") if isinstance(data, dict) else None
    got = int(ds.images.shape[1])
    if isinstance(trained, int) and not isinstance(trained, bool) and got != trained:
        raise SchemaError(
            f"{ds.meta.get('source', 'the data')}: windows of {got}x{got} crystals; {fw.root} was trained "
            f"on {trained}x{trained}",
            f"verify with data of {trained}x{trained} windows (trigger-ml data simulate --window {trained})",
        )


def compare(
    levels: dict[str, L.Level], sets: dict[str, np.ndarray], reference_outputs: dict[str, np.ndarray] | None = None
) -> list[PairResult]:
    """Every level against the reference on every input set; the reference's outputs per set go
    into `reference_outputs` when given (verify's fidelity check uses them)."""
    results = []
    ref = levels[REFERENCE]
    with task("exact check: levels x input sets", len(sets) * len(levels)) as advance:
        for set_name, x in sets.items():
            y_ref = ref.predict(x)
            advance(1)
            if reference_outputs is not None:
                reference_outputs[set_name] = y_ref
            for name, level in levels.items():
                if name != REFERENCE:
                    results.append(_pair(name, level, set_name, x, y_ref))
                    advance(1)
    return results


def _pair(name: str, level: L.Level, set_name: str, x: np.ndarray, y_ref: np.ndarray) -> PairResult:
    """One level against the reference's outputs on one input set."""
    t = time.perf_counter()
    y = level.predict(x)
    dt = time.perf_counter() - t
    same_shape = y.shape == y_ref.shape
    bad = np.flatnonzero(np.any(y != y_ref, axis=1)) if same_shape else np.arange(len(x))
    pr = PairResult(name, set_name, len(x), int(len(bad)), dt)
    if len(bad):
        i = int(bad[0])
        pr.first = {
            "index": i,
            "expected": y_ref[i].tolist(),
            "got": y[i].tolist() if same_shape else None,
            "output_index": int(np.flatnonzero(y[i] != y_ref[i])[0]) if same_shape else None,
        }
    return pr
