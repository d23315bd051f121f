"""The budget check: the card's latency/II/resource limits against the best available figures.

Shared by `trigger-ml report` (pass/fail column) and `trigger-ml verify` (exit code 2).
"""

from __future__ import annotations

from trigger_ml.config import Budget
from trigger_ml.report.figures import Figure
from trigger_ml.verify.gates import Check

LIMITS = {"lut": "lut", "ff": "ff", "dsp": "dsp", "bram": "bram", "latency_ns": "latency_ns", "ii": "ii"}


def check(budget: Budget, figures: dict[str, Figure]) -> list[Check]:
    """One check per limit the card sets; a limit without any figure cannot be checked (ok=None)."""
    out = []
    for field, quantity in LIMITS.items():
        limit = getattr(budget, field)
        if limit is None:
            continue
        fig = figures.get(quantity)
        name = f"budget: {quantity} <= {limit:g}"
        if fig is None:
            out.append(Check(name, None, detail=f"no source gives {quantity} for this model"))
        else:
            out.append(Check(name, fig.value <= limit, fig.value, float(limit), fig.source))
    return out
