"""Physics metrics (scikit-learn ROC): AUC, efficiency at the baseline's fake rate, anomaly TPRs."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from trigger_ml.data.baseline import baseline_pass, working_point
from trigger_ml.data.dataset import Dataset
from trigger_ml.data.simulate import ANOMALY_CLASSES


def efficiency_at_fake_rate(sig: np.ndarray, bkg: np.ndarray, fake_rate: float) -> tuple[float, float]:
    """Signal efficiency of the threshold whose background pass fraction is <= fake_rate.

    Returns (efficiency, threshold); a window passes when its score is > threshold.
    """
    bkg_sorted = np.sort(bkg)
    n_pass = int(np.floor(fake_rate * len(bkg)))
    thr = bkg_sorted[len(bkg) - n_pass - 1] if n_pass < len(bkg) else -np.inf
    return float((sig > thr).mean()), float(thr)


def tpr_at_fpr(sig: np.ndarray, bkg: np.ndarray, fpr: float) -> float:
    return efficiency_at_fake_rate(sig, bkg, fpr)[0]


def classifier_metrics(score: np.ndarray, ds: Dataset, signal: str, background: str) -> dict[str, Any]:
    s, b = ds.mask(signal), ds.mask(background)
    y = np.concatenate([np.ones(s.sum()), np.zeros(b.sum())])
    sc = np.concatenate([score[s], score[b]])
    wp = working_point(baseline_pass(ds.features), s, b)
    eff, thr = efficiency_at_fake_rate(score[s], score[b], wp.fake_rate)
    return {
        "auc": float(roc_auc_score(y, sc)),
        "baseline_efficiency": wp.efficiency,
        "baseline_fake_rate": wp.fake_rate,
        "efficiency_at_baseline_fake_rate": eff,
        "threshold_at_baseline_fake_rate": thr,
        "n_signal": int(s.sum()),
        "n_background": int(b.sum()),
    }


def anomaly_metrics(score: np.ndarray, ds: Dataset, normal: tuple[str, ...]) -> dict[str, Any]:
    bkg = score[ds.mask(*normal)]
    out: dict[str, Any] = {"n_normal": int(len(bkg)), "per_class": {}}
    for cls in ds.class_names:
        if cls in normal or cls not in ANOMALY_CLASSES:
            continue
        sig = score[ds.mask(cls)]
        if len(sig) == 0:
            continue
        y = np.concatenate([np.ones(len(sig)), np.zeros(len(bkg))])
        out["per_class"][cls] = {
            "auc": float(roc_auc_score(y, np.concatenate([sig, bkg]))),
            "tpr_at_fpr_1e-3": tpr_at_fpr(sig, bkg, 1e-3),
            "tpr_at_fpr_1e-4": tpr_at_fpr(sig, bkg, 1e-4),
            "n": int(len(sig)),
        }
    return out


def roc(sig: np.ndarray, bkg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.concatenate([np.ones(len(sig)), np.zeros(len(bkg))])
    fpr, tpr, _ = roc_curve(y, np.concatenate([sig, bkg]))
    return fpr, tpr
