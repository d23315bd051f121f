"""The vectorised features against a slow, obviously correct per-window reference."""

import math
from fractions import Fraction

import numpy as np

from trigger_ml.data import simulate
from trigger_ml.data.features import FEATURE_NAMES, FEATURES, N_XTAL_MIN_COUNTS, compute_features


def _floor_code(value: Fraction, name: str) -> int:
    fmt = FEATURES[name]
    return min(math.floor(value * 2**fmt.frac), fmt.max_raw)


def _sigma(win, axis):
    """Energy-weighted RMS of the crystal index along `axis` over the 5x5, exactly."""
    total = Fraction(0)
    first = Fraction(0)
    second = Fraction(0)
    for i in range(5):
        for j in range(5):
            e = int(win[i][j])
            k = (i if axis == 0 else j) - 2
            total += e
            first += e * k
            second += e * k * k
    if total == 0:
        return None
    mean = first / total
    return second / total - mean * mean


def reference_features(img, lsb):
    n = len(img)
    c = n // 2
    e = [[int(img[i][j]) for j in range(n)] for i in range(n)]
    w55 = [row[c - 2 : c + 3] for row in e[c - 2 : c + 3]]
    e55 = sum(sum(r) for r in w55)
    e33 = sum(e[i][j] for i in range(c - 1, c + 2) for j in range(c - 1, c + 2))
    e35 = sum(e[i][j] for i in range(c - 1, c + 2) for j in range(c - 2, c + 3))
    row = lambda i: sum(e[i][j] for j in range(c - 2, c + 3))  # noqa: E731
    e15 = row(c)
    e25 = max(row(c) + row(c - 1), row(c) + row(c + 1))
    seed = e[c][c]
    crystals = sorted(x for r in w55 for x in r)
    ewin = sum(sum(r) for r in e)

    def ratio(a, name):
        return 0 if e55 == 0 else _floor_code(Fraction(a, e55), name)

    out = {
        "et_3x5": _floor_code(Fraction(e35) * Fraction(lsb), "et_3x5"),
        "r33_55": ratio(e33, "r33_55"),
        "r25_55": ratio(e25, "r25_55"),
        "r15_55": ratio(e15, "r15_55"),
        "seed_frac": ratio(seed, "seed_frac"),
        "second_frac": ratio(crystals[-2], "second_frac"),
        "iso": ratio(ewin - e55, "iso"),
        "n_xtal": sum(x >= N_XTAL_MIN_COUNTS for x in crystals),
    }
    for name, axis in (("sigma_ieta", 0), ("sigma_iphi", 1)):
        var = _sigma(w55, axis)
        fmt = FEATURES[name]
        out[name] = 0 if var is None else min(math.isqrt(math.floor(var * 4**fmt.frac)), fmt.max_raw)
    return [out[k] / 2 ** FEATURES[k].frac for k in FEATURE_NAMES]


def test_features_equal_the_slow_reference_exactly():
    w = simulate(400, seed=21)
    fast = compute_features(w.images, 0.25)
    slow = np.array([reference_features(im, 0.25) for im in w.images], dtype=np.float32)
    np.testing.assert_array_equal(fast, slow)


def test_features_on_edge_windows_equal_the_reference():
    rng = np.random.default_rng(0)
    edge = np.zeros((6, 9, 9), dtype=np.uint16)
    edge[1, 4, 4] = 1023  # a single saturated crystal
    edge[2] = 1023  # everything saturated
    edge[3, 0, 0] = 5  # energy only outside the 5x5
    edge[4] = rng.integers(0, 1024, (9, 9))
    edge[5, 2:7, 2:7] = 1  # flat 5x5
    fast = compute_features(edge, 0.25)
    slow = np.array([reference_features(im, 0.25) for im in edge], dtype=np.float32)
    np.testing.assert_array_equal(fast, slow)


def test_features_lie_on_their_fixed_point_grids_and_ranges():
    f = compute_features(simulate(2000, seed=2).images, 0.25)
    for i, name in enumerate(FEATURE_NAMES):
        fmt = FEATURES[name]
        codes = f[:, i] * 2**fmt.frac
        np.testing.assert_array_equal(codes, np.floor(codes))
        assert f[:, i].min() >= 0 and f[:, i].max() <= fmt.max_value
