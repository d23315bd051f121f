"""Test inputs at the extremes of a model's input format (from the compile manifest).

Every input is fixed point: unsigned ufixed<integer + frac, integer>, or, for an entry with
`signed: 1` (imported models), fixed<1 + integer + frac, 1 + integer> (range -2**integer ..
2**integer - LSB). The extremes are all zero, all maximum, alternating maximum and zero (both
phases), one LSB everywhere, maximum minus one LSB, for signed inputs also all minimum,
alternating maximum and minimum and minus one LSB, and uniformly random words on the grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def grid_bits(input_grid: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(integer bits, fraction bits) per flattened input."""
    i = np.concatenate([np.full(e["inputs"], e["integer"]) for e in input_grid]).astype(np.int64)
    f = np.concatenate([np.full(e["inputs"], e["frac"]) for e in input_grid]).astype(np.int64)
    return i, f


def grid_signed(input_grid: list[dict[str, Any]]) -> np.ndarray:
    """Whether each flattened input is signed (entries without `signed` are unsigned)."""
    return np.concatenate([np.full(e["inputs"], bool(e.get("signed", 0))) for e in input_grid])


def extreme_inputs(input_grid: list[dict[str, Any]], shape: tuple[int, ...], n_random: int = 250,
                   seed: int = 0) -> np.ndarray:
    """Rows of model inputs (float64, exactly on the grid) at and inside the format's extremes."""
    i, f = grid_bits(input_grid)
    lsb = np.ldexp(1.0, -f)
    top = np.ldexp(1.0, i) - lsb
    n = len(i)
    alt = np.arange(n) % 2 == 0
    rows = [np.zeros(n), top, np.where(alt, top, 0.0), np.where(alt, 0.0, top), lsb, top - lsb]
    signed = grid_signed(input_grid)
    bottom = np.where(signed, -np.ldexp(1.0, i), 0.0)
    if signed.any():
        rows += [bottom, np.where(alt, top, bottom), np.where(signed, -lsb, 0.0)]
    rng = np.random.default_rng(seed)
    words = rng.integers(0, np.ldexp(1.0, i + f).astype(np.int64) * np.where(signed, 2, 1), size=(n_random, n))
    x = np.vstack([np.array(rows), words * lsb + bottom])
    return x.reshape(len(x), *shape)
