"""The exactness rule for a monotone per-channel float op before a quantizer (issue 19, FINN's
streamlining idea): y = q(relu?(x * a + b)) with x on the grid 2**-f inside known per-channel
bounds, a and b floats (a batch norm's scale and shift, 1/N of an average).

`replace_monotone` enumerates every reachable word x of each channel, computes the reference y in
float64 exactly as `ir.Graph.evaluate` does (x * a + b, then relu, then q), and returns either

- a dyadic rescale: per channel c (a rounded to the fewest significant bits that work, at most
  24: float32-exact) and d (the coarsest dyadic inside the interval that every word's output level
  allows for x * c + d), with q(relu?(x * c + d)) == y checked on every word; or
- integer thresholds (when no rescale works): y = y(x_min) + s * #(x >= t) per channel, s = +-q's
  LSB, t the words where the monotone y steps (a step of k LSBs repeats t k times), checked on
  every word;

or None when it cannot prove either (more than `max_words` words, a quantizer that wraps on the
reachable range, formats that differ inside a channel). The words where float32 arithmetic
(x, a, b as float32) would give another y than float64 are counted (`float32_decides`): those are
the ties that the source framework's precision decides.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trigger_ml.fixed import quantize_kif
from trigger_ml.interop.ir import Quant

MAX_SIG_BITS = 24  # float32 weights
MAX_THRESHOLDS = 8192  # units (1-bit quantizers) a threshold replacement may cost in all


def _per_channel(q: Quant, shape: tuple[int, ...]) -> list[tuple[int, int, int]] | None:
    """(k, i, f) of q for each channel (last axis), or None when q differs inside a channel."""
    arrs = [np.broadcast_to(np.asarray(a), shape).reshape(-1, shape[-1]) for a in (q.k, q.i, q.f)]
    if any(np.any(a != a[:1]) for a in arrs):
        return None
    return [(int(arrs[0][0, c]), int(arrs[1][0, c]), int(arrs[2][0, c])) for c in range(shape[-1])]


def _q(x: np.ndarray, kif: tuple[int, int, int], q: Quant) -> np.ndarray:
    return quantize_kif(x, *kif, q.rounding, q.overflow)


def _levels_range(kif: tuple[int, int, int], overflow: str) -> tuple[float, float]:
    k, i, f = kif
    lsb = 2.0**-f
    lo = -(2.0**i) if k else 0.0
    if overflow == "SAT_SYM" and k:
        lo += lsb
    return lo, 2.0**i - lsb


def _preimage(y: np.ndarray, kif, q: Quant, relu: bool) -> tuple[np.ndarray, np.ndarray]:
    """For each output level y, an interval [L, U) of z with q(relu?(z)) == y (ends may be open:
    the candidate is checked word by word afterwards)."""
    e = 2.0 ** -kif[2]
    if q.rounding == "TRN":
        lo, hi = y.copy(), y + e
    else:
        lo, hi = y - e / 2, y + e / 2
    if q.overflow in ("SAT", "SAT_SYM"):
        r_lo, r_hi = _levels_range(kif, q.overflow)
        lo = np.where(y <= r_lo, -np.inf, lo)
        hi = np.where(y >= r_hi, np.inf, hi)
    if relu:
        lo = np.where(y <= 0, -np.inf, lo)
    return lo, hi


def _coarsest_inside(lo: float, hi: float, near: float) -> float | None:
    """The dyadic number with the fewest fraction bits strictly inside (lo, hi) (ends infinite: near b)."""
    if math.isinf(lo) and math.isinf(hi):
        return 0.0
    if math.isinf(lo):
        lo = min(hi, near) - max(1.0, abs(hi))
    if math.isinf(hi):
        hi = max(lo, near) + max(1.0, abs(lo))
    for g in range(-16, 64):
        d = (math.floor(lo * 2.0**g) + 1) * 2.0**-g
        if lo < d < hi:
            return d
    return None


def _rescale(xs, y, a, b, kif, q, relu) -> tuple[float, float, int] | None:
    if a == 0:
        return (0.0, float(y[0]), 0) if np.all(y == y[0]) else None
    lo, hi = _preimage(y, kif, q, relu)
    e = math.floor(math.log2(abs(a)))
    for sig in range(1, MAX_SIG_BITS + 1):
        s = sig - 1 - e
        c = float(np.round(a * 2.0**s) * 2.0**-s)
        if c == 0:
            continue
        xc = xs * c
        d_lo, d_hi = float(np.max(lo - xc)), float(np.min(hi - xc))
        if not d_lo < d_hi:
            continue
        d = _coarsest_inside(d_lo, d_hi, float(b))
        if d is None or np.float32(d) != d:
            continue
        z = xs * c + d
        if np.array_equal(_q(np.maximum(z, 0.0) if relu else z, kif, q), y):
            return c, d, sig
    return None


def _thresholds(n_lo: float, n_hi: float, f: int, ref, a: float, kif) -> tuple[np.ndarray, float, float] | None:
    """The words where the monotone ref steps, by bisection over the words [n_lo, n_hi] (float64
    ref, which is monotone: IEEE multiplication and addition are), without enumerating them."""
    e = 2.0 ** -kif[2]
    sign = 1.0 if a >= 0 else -1.0
    y_lo, y_hi = (float(v) for v in ref(np.ldexp(np.array([n_lo, n_hi]), -f)))
    k = int(round((y_hi - y_lo) * sign / e))
    if k < 0:
        return None
    if k == 0:
        return np.zeros(0), sign * e, y_lo
    target = y_lo + sign * e * np.arange(1, k + 1)  # the first word reaching each next level
    lo, hi = np.full(k, n_lo), np.full(k, n_hi)  # ref(lo) below target, ref(hi) reached
    while np.any(hi - lo > 1):
        mid = np.floor((lo + hi) / 2)
        reached = ref(np.ldexp(mid, -f)) * sign >= target * sign
        hi, lo = np.where(reached, mid, hi), np.where(reached, lo, mid)
    return np.ldexp(hi, -f), sign * e, y_lo


def replace_monotone(
    bounds: tuple[np.ndarray, np.ndarray],
    f: int,
    scale: np.ndarray,
    shift: np.ndarray,
    relu: bool,
    q: Quant,
    max_words: int,
) -> dict[str, Any] | None:
    """The exact replacement of q(relu?(x * scale + shift)) for x on 2**-f in `bounds` (module
    docstring), or None."""
    lo, hi = bounds
    shape = lo.shape
    n_ch = shape[-1]
    kifs = _per_channel(q, shape)
    if kifs is None:
        return None
    a_all = np.broadcast_to(np.asarray(scale, np.float64), (n_ch,))
    b_all = np.broadcast_to(np.asarray(shift, np.float64), (n_ch,))
    lo_c = lo.reshape(-1, n_ch).min(0)  # per channel: every position's bounds
    hi_c = hi.reshape(-1, n_ch).max(0)
    n_lo = np.ceil(np.ldexp(lo_c, f))
    n_hi = np.floor(np.ldexp(hi_c, f))
    words = float(np.sum(n_hi - n_lo + 1))
    enumerate_all = words <= max_words
    refs = []
    for ch in range(n_ch):
        a, b, kif = float(a_all[ch]), float(b_all[ch]), kifs[ch]

        def ref(x, a=a, b=b, kif=kif):
            z = x * a + b
            return _q(np.maximum(z, 0.0) if relu else z, kif, q)

        if q.overflow in ("WRAP", "SAT_ZERO"):  # monotone only when it never overflows
            r_lo, r_hi = _levels_range(kif, "SAT")
            ends = np.ldexp(np.array([n_lo[ch], n_hi[ch]]), -f) * a + b
            u = quantize_kif(np.maximum(ends, 0.0) if relu else ends, 1, kif[1] + 64, kif[2], q.rounding, "SAT")
            if np.any(u < r_lo) or np.any(u > r_hi):
                return None
        refs.append(ref)
    detail: dict[str, Any] = {"words": int(words), "float32_decides": None}
    if enumerate_all:  # every word: the float32 ties, and a dyadic rescale proven word by word
        found, f32 = [], 0
        for ch in range(n_ch):
            a, b, kif = float(a_all[ch]), float(b_all[ch]), kifs[ch]
            xs = np.ldexp(np.arange(n_lo[ch], n_hi[ch] + 1), -f)
            y = refs[ch](xs)
            z32 = xs.astype(np.float32) * np.float32(a) + np.float32(b)
            y32 = _q(np.maximum(z32, 0).astype(np.float64) if relu else z32.astype(np.float64), kif, q)
            f32 += int(np.sum(y32 != y))
            if len(found) == ch:
                r = _rescale(xs, y, a, b, kif, q, relu)
                if r is not None:
                    found.append(r)
        detail["float32_decides"] = f32
        if len(found) == n_ch:
            detail["scale_bits"] = int(max((r[2] for r in found), default=0))
            scale_, shift_ = np.array([r[0] for r in found]), np.array([r[1] for r in found])
            return {"kind": "rescale", "scale": scale_, "shift": shift_, "detail": detail}
    ths, outs, biases = [], [], []
    for ch in range(n_ch):
        t = _thresholds(float(n_lo[ch]), float(n_hi[ch]), f, refs[ch], float(a_all[ch]), kifs[ch])
        if t is None:
            return None
        ths.append(t[0])
        outs.append(t[1])
        biases.append(t[2])
    if sum(len(t) for t in ths) > MAX_THRESHOLDS:
        return None
    width = max((len(t) for t in ths), default=0)
    table = np.full((n_ch, max(width, 1)), np.inf)
    for ch, t in enumerate(ths):
        table[ch, : len(t)] = t
    detail["thresholds"] = int(sum(len(t) for t in ths))
    return {
        "kind": "threshold",
        "thresholds": table,
        "out_scale": np.array(outs),
        "out_bias": np.array(biases),
        "detail": detail,
    }
