"""Test inputs at the extremes of a model's input formats (`fixed.Grid`).

The extremes are all zero, all maximum, alternating maximum and zero (both phases), one LSB
everywhere, maximum minus one LSB, for signed inputs also all minimum, alternating maximum and
minimum and minus one LSB; then uniformly random words on the grid. Every row lies exactly on the
grid, so a firmware level given these rows sees words of its input format.
"""

from __future__ import annotations

import numpy as np

from trigger_ml.fixed import Grid


def extreme_inputs(grid: Grid, shape: tuple[int, ...], n_random: int = 250, seed: int = 0) -> np.ndarray:
    """Rows of model inputs (float64, exactly on the grid) at and inside the formats' extremes."""
    fmts = grid.formats()
    f = np.array([x.frac for x in fmts], np.int64)
    signed = np.array([x.signed for x in fmts], bool)
    lsb = np.ldexp(1.0, -f)
    top = np.array([x.max_value for x in fmts])
    bottom = np.array([x.min_value for x in fmts])
    n = len(fmts)
    alt = np.arange(n) % 2 == 0
    rows = [np.zeros(n), top, np.where(alt, top, 0.0), np.where(alt, 0.0, top), lsb, top - lsb]
    if signed.any():
        rows += [bottom, np.where(alt, top, bottom), np.where(signed, -lsb, 0.0)]
    rng = np.random.default_rng(seed)
    span = np.array([x.max_raw - x.min_raw + 1 for x in fmts], np.int64)
    words = rng.integers(0, span, size=(n_random, n)) + np.array([x.min_raw for x in fmts], np.int64)
    x = np.vstack([np.array(rows), np.ldexp(words.astype(np.float64), -f)])
    return x.reshape(len(x), *shape)
