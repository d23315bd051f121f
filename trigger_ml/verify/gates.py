"""Gates besides exactness: physics fidelity against the float twin, and the firmware budget.

Fidelity is physics, never "exact": the quantized model's AUC and efficiency at the baseline's
fake rate (classifiers), or AUC per anomaly class (anomaly models), against the float twin's on
the same windows, with the deltas checked against the card's `fidelity` thresholds. The budget
verdict is the report stage's (`trigger_ml.report.budget.verdict`); it uses this module's `Check`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.compile import manifest
from trigger_ml.config import ModelCard
from trigger_ml.layout import FirmwareDir
from trigger_ml.train import metrics as M
from trigger_ml.train.fit import load_model, predict
from trigger_ml.train.models import model_inputs

VERDICT = {True: "pass", False: "FAIL", None: "n/a"}  # Check.ok as shown in tables


@dataclass(frozen=True)
class Check:
    """One gate: `name`, pass/fail (None: could not be checked), the figure, its limit, and why."""

    name: str
    ok: bool | None
    value: float | None = None
    limit: float | None = None
    detail: str = ""

    def message(self) -> str:
        if self.value is None:
            return self.detail
        return f"{self.value:.6g} against limit {self.limit:.6g}" + (f" ({self.detail})" if self.detail else "")


def fidelity(card: ModelCard, q_score: np.ndarray, f_score: np.ndarray, ds) -> tuple[list[Check], dict[str, Any]]:
    """Quantized vs float physics on the windows of `ds`; returns the checks and both metrics."""
    fid = card.fidelity
    if card.task == "classifier":
        sig, bkg = card.classes[0], card.classes[1]
        if not ds.mask(sig).any() or not ds.mask(bkg).any():
            return [Check("fidelity", None, detail=f"the data has no {sig} or no {bkg} windows")], {}
        mq, mf = M.classifier_metrics(q_score, ds, sig, bkg), M.classifier_metrics(f_score, ds, sig, bkg)
        checks = [
            Check(
                "fidelity: AUC loss (float - quantized)",
                mf["auc"] - mq["auc"] <= fid.max_auc_loss,
                mf["auc"] - mq["auc"],
                fid.max_auc_loss,
                f"quantized {mq['auc']:.4f}, float {mf['auc']:.4f}",
            ),
            Check(
                "fidelity: efficiency loss at the baseline fake rate",
                mf["efficiency_at_baseline_fake_rate"] - mq["efficiency_at_baseline_fake_rate"]
                <= fid.max_efficiency_loss,
                mf["efficiency_at_baseline_fake_rate"] - mq["efficiency_at_baseline_fake_rate"],
                fid.max_efficiency_loss,
                f"quantized {mq['efficiency_at_baseline_fake_rate']:.4f}, float {mf['efficiency_at_baseline_fake_rate']:.4f}, "
                f"fake rate {mq['baseline_fake_rate']:.4f}",
            ),
        ]
        return checks, {"quantized": mq, "float": mf}
    mq, mf = M.anomaly_metrics(q_score, ds, card.classes), M.anomaly_metrics(f_score, ds, card.classes)
    checks = []
    for cls, q in mq["per_class"].items():
        f = mf["per_class"][cls]
        checks.append(
            Check(
                f"fidelity: {cls} AUC loss (float - quantized)",
                f["auc"] - q["auc"] <= fid.max_auc_loss,
                f["auc"] - q["auc"],
                fid.max_auc_loss,
                f"quantized {q['auc']:.4f}, float {f['auc']:.4f}",
            )
        )
    for cls, lo in fid.min_anomaly_auc.items():
        if cls not in mq["per_class"]:
            checks.append(Check(f"fidelity: {cls} AUC", None, detail=f"the data has no {cls} windows"))
            continue
        auc = mq["per_class"][cls]["auc"]
        checks.append(Check(f"fidelity: {cls} AUC (minimum)", auc >= lo, auc, lo, "quantized model"))
    if not checks:
        checks.append(Check("fidelity", None, detail="the data has no anomaly windows"))
    return checks, {"quantized": mq, "float": mf}


def fidelity_of(fw_dir: Path, card: ModelCard, q_score: np.ndarray, ds) -> tuple[list[Check], dict[str, Any]]:
    """Fidelity of a compiled model: `q_score` from the exact levels, the float twin from
    `reference/float.keras`."""
    fw = FirmwareDir(fw_dir)
    twin = fw.float_model
    if not twin.exists():
        return [
            Check("fidelity", None, detail=f"{twin} is missing: compile from a training run that has a float twin")
        ], {}
    manifest.check(fw.root, [twin.relative_to(fw.root).as_posix()])
    f_score = predict(load_model(twin), model_inputs(card, ds))[:, 0].astype(np.float64)
    return fidelity(card, q_score, f_score, ds)
