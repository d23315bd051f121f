"""The exact check: every level against the quantized model, raw outputs, exact equality.

Inputs are data windows and fuzzed words of the input format (`vectors.extreme_inputs`). An
imported QONNX model adds its own reference, qonnx's executor, as one more level.
Each pair (reference, level) gives counts of events compared and mismatched, and the first
mismatching event with expected and got.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.compile import manifest
from trigger_ml.compile.driver import CARD, MODEL
from trigger_ml.config import load_card
from trigger_ml.verify import levels as L
from trigger_ml.verify.vectors import extreme_inputs

REFERENCE = "keras"


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


def load_levels(fw_dir: Path, rtl_sim: bool = True) -> dict[str, L.Level]:
    """Every level of a compiled model directory, the reference first."""
    fw_dir = Path(fw_dir)
    m = manifest.read(fw_dir)
    out: dict[str, L.Level] = {REFERENCE: L.QuantizedModel.load(fw_dir / MODEL), "csim": L.csim(fw_dir)}
    foreign = L.foreign_reference(fw_dir)
    if foreign is not None and foreign[1]["check"] == "exact":  # an imported QONNX model: its own executor
        out[foreign[1]["reference"]] = foreign[0]
    if m["rtl"]["written"]:
        sw = L.software_model(fw_dir)
        out["da4ml"] = sw
        if rtl_sim:
            out["rtl"] = L.rtl_sim(fw_dir, sw.comb)
    return out


def inputs_for(fw_dir: Path, ds, n_fuzz: int, seed: int = 0) -> dict[str, np.ndarray]:
    from trigger_ml.train.models import input_shape, model_inputs

    fw_dir = Path(fw_dir)
    card = load_card(fw_dir / CARD)
    m = manifest.read(fw_dir)
    sets = {}
    if ds is not None and card.input != "tensor":  # an imported model reads no ECAL windows
        sets["data"] = model_inputs(card, ds).astype(np.float64)
    meta = ds.meta if ds is not None else {}
    if card.input == "tensor":  # an imported model: its input shape is in the run's metrics
        import json

        meta = json.loads((fw_dir / "reference" / "metrics.json").read_text())["data"]
    sets["fuzzed"] = extreme_inputs(m["input_grid"], input_shape(card, meta), n_random=n_fuzz, seed=seed)
    return sets


def compare(levels: dict[str, L.Level], sets: dict[str, np.ndarray],
            reference_outputs: dict[str, np.ndarray] | None = None) -> list[PairResult]:
    """Every level against the reference on every input set; the reference's outputs per set go
    into `reference_outputs` when given (verify's fidelity check uses them)."""
    results = []
    ref = levels[REFERENCE]
    for set_name, x in sets.items():
        y_ref = ref.predict(x)
        if reference_outputs is not None:
            reference_outputs[set_name] = y_ref
        for name, level in levels.items():
            if name == REFERENCE:
                continue
            t = time.perf_counter()
            y = level.predict(x)
            dt = time.perf_counter() - t
            bad = np.flatnonzero(np.any(y != y_ref, axis=1)) if y.shape == y_ref.shape else np.arange(len(x))
            pr = PairResult(name, set_name, len(x), int(len(bad)), dt)
            if len(bad):
                i = int(bad[0])
                same_shape = y.shape == y_ref.shape
                pr.first = {"index": i, "expected": y_ref[i].tolist(), "got": y[i].tolist() if same_shape else None,
                            "output_index": int(np.flatnonzero(y[i] != y_ref[i])[0]) if same_shape else None}
            results.append(pr)
    return results
