"""Matplotlib set-up shared by every stage: a non-interactive backend and atomic PNG writes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from trigger_ml.atomic import atomic_file  # noqa: E402


def save(fig: Figure, path: Path) -> Path:
    """Write `fig` as a PNG atomically and close it."""
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


__all__ = ["plt", "save"]
