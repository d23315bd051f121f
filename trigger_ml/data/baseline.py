"""The cut-based CMS Phase-2 barrel standalone e/gamma ID, adapted to our windows.

Shower shape: SS = E2x5/E5x5 >= 0.94 + 0.052 * exp(-0.044 * pT).
Isolation:    iso < 0.85 - 0.0080 * pT below 80 GeV, iso < 0.21 from 80 GeV.
Both cuts are dropped above 130 GeV. pT is our cluster ET (3x5), SS our `r25_55`, iso our
(E_window - E5x5)/E5x5 (`trigger_ml.data.features`); the constants are CMS's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger_ml.data.features import FEATURE_NAMES

_PT, _SS, _ISO = (FEATURE_NAMES.index(k) for k in ("et_3x5", "r25_55", "iso"))


def passes_shower_shape(pt: np.ndarray, ss: np.ndarray) -> np.ndarray:
    return ss >= 0.94 + 0.052 * np.exp(-0.044 * pt)


def passes_isolation(pt: np.ndarray, iso: np.ndarray) -> np.ndarray:
    return np.where(pt < 80.0, iso < 0.85 - 0.0080 * pt, iso < 0.21)


def baseline_pass(features: np.ndarray) -> np.ndarray:
    """Boolean decision of the cut-based ID for feature rows (n, F) in FEATURE_NAMES order."""
    pt, ss, iso = features[:, _PT], features[:, _SS], features[:, _ISO]
    cuts = passes_shower_shape(pt, ss) & passes_isolation(pt, iso)
    return cuts | (pt > 130.0)


@dataclass(frozen=True)
class WorkingPoint:
    """Signal efficiency and background (PU) fake rate of a boolean decision."""

    efficiency: float
    fake_rate: float
    n_signal: int
    n_background: int

    def __str__(self) -> str:
        return (
            f"signal efficiency {self.efficiency:.4f} ({self.n_signal} eg), "
            f"PU fake rate {self.fake_rate:.4f} ({self.n_background} pu)"
        )


def working_point(decision: np.ndarray, is_signal: np.ndarray, is_background: np.ndarray) -> WorkingPoint:
    ns, nb = int(is_signal.sum()), int(is_background.sum())
    if ns == 0 or nb == 0:
        raise ValueError("a working point needs both signal (eg) and background (pu) windows")
    return WorkingPoint(float(decision[is_signal].mean()), float(decision[is_background].mean()), ns, nb)
