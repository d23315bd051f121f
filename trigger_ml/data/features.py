"""Shower-shape features from the digitised windows, exactly on fixed-point grids.

All features are computed with integer arithmetic from the integer counts and truncated
(floor) to the grid of their format, so the model's input quantizer can match them without
losing or inventing information, and a slow per-window reference (`tests/data`) reproduces
them exactly. Regions are centred on the seed crystal (the window centre); ieta is axis 0,
iphi axis 1. Ranges and formats (unsigned fixed point `ufixed<W, I>`, W bits, I integer bits):

| feature      | definition                                              | format          | range        |
|--------------|---------------------------------------------------------|-----------------|--------------|
| et_3x5       | cluster ET, 3 (ieta) x 5 (iphi) around the seed, GeV    | ufixed<16, 12>  | 0 - 4095.94  |
| r33_55       | E3x3 / E5x5                                             | ufixed<9, 1>    | 0 - 1        |
| r25_55       | E2x5 / E5x5 (2 ieta rows: seed row + larger neighbour)  | ufixed<9, 1>    | 0 - 1        |
| r15_55       | E1x5 / E5x5 (seed row)                                  | ufixed<9, 1>    | 0 - 1        |
| sigma_ieta   | energy-weighted RMS of ieta in 5x5 (linear weights)     | ufixed<8, 2>    | 0 - 2        |
| sigma_iphi   | energy-weighted RMS of iphi in 5x5 (linear weights)     | ufixed<8, 2>    | 0 - 2        |
| seed_frac    | E_seed / E5x5                                           | ufixed<9, 1>    | 0 - 1        |
| second_frac  | second-largest crystal in 5x5 / E5x5                    | ufixed<9, 1>    | 0 - 0.5      |
| iso          | (E_window - E5x5) / E5x5, saturated                     | ufixed<10, 4>   | 0 - 15.98    |
| n_xtal       | crystals in 5x5 with >= 2 LSB                           | ufixed<5, 5>    | 0 - 25       |

Linear (not log) energy weights keep sigma exact in integers: var = (S0 S2 - S1^2) / S0^2
with S_k = sum E i^k, and floor(sqrt(var) 2^F) = isqrt(floor(var 4^F)).
A ratio with a zero denominator is 0.
"""

from __future__ import annotations

import numpy as np

from trigger_ml.fixed import Fixed

FEATURES: dict[str, Fixed] = {
    "et_3x5": Fixed.parse("ufixed<16,12>"),
    "r33_55": Fixed.parse("ufixed<9,1>"),
    "r25_55": Fixed.parse("ufixed<9,1>"),
    "r15_55": Fixed.parse("ufixed<9,1>"),
    "sigma_ieta": Fixed.parse("ufixed<8,2>"),
    "sigma_iphi": Fixed.parse("ufixed<8,2>"),
    "seed_frac": Fixed.parse("ufixed<9,1>"),
    "second_frac": Fixed.parse("ufixed<9,1>"),
    "iso": Fixed.parse("ufixed<10,4>"),
    "n_xtal": Fixed.parse("ufixed<5,5>"),
}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURES)
N_XTAL_MIN_COUNTS = 2


def _ratio_code(num: np.ndarray, den: np.ndarray, fmt: Fixed) -> np.ndarray:
    """floor(num / den * 2^F), saturated; 0 where den == 0."""
    safe = np.where(den > 0, den, 1)
    code = (num << fmt.frac) // safe
    return np.where(den > 0, np.minimum(code, fmt.max_raw), 0)


def _isqrt(v: np.ndarray) -> np.ndarray:
    """Exact floor(sqrt(v)) for non-negative int64 arrays."""
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    r = np.where(r * r > v, r - 1, r)
    return np.where((r + 1) * (r + 1) <= v, r + 1, r)


def _sigma_code(e: np.ndarray, axis: int, fmt: Fixed) -> np.ndarray:
    """Energy-weighted RMS along `axis` of 5x5 integer patches, as a code of `fmt`."""
    i = np.arange(-2, 3, dtype=np.int64)
    proj = e.sum(axis=2 if axis == 0 else 1)  # (n, 5) along the chosen axis
    s0 = proj.sum(axis=1)
    s1 = proj @ i
    s2 = proj @ (i * i)
    num = s0 * s2 - s1 * s1
    den = s0 * s0
    safe = np.where(den > 0, den, 1)
    code = _isqrt((num << (2 * fmt.frac)) // safe)
    return np.where(den > 0, np.minimum(code, fmt.max_raw), 0)


def feature_codes(images: np.ndarray, lsb_gev: float) -> np.ndarray:
    """Integer codes (n, F) of every feature for windows of integer counts (n, N, N)."""
    img = np.asarray(images).astype(np.int64)
    n, w, _ = img.shape
    c = w // 2
    e55 = img[:, c - 2 : c + 3, c - 2 : c + 3]
    rows = e55.sum(axis=2)  # (n, 5) per ieta row
    s55 = rows.sum(axis=1)
    s33 = img[:, c - 1 : c + 2, c - 1 : c + 2].sum(axis=(1, 2))
    s35 = rows[:, 1:4].sum(axis=1)
    s15 = rows[:, 2]
    s25 = s15 + np.maximum(rows[:, 1], rows[:, 3])
    seed = img[:, c, c]
    flat = np.sort(e55.reshape(n, 25), axis=1)
    second = flat[:, -2]
    swin = img.sum(axis=(1, 2))
    f = FEATURES
    out = np.empty((n, len(f)), dtype=np.int64)
    et_scale = lsb_gev * (1 << f["et_3x5"].frac)
    out[:, 0] = np.minimum(np.floor(s35 * et_scale).astype(np.int64), f["et_3x5"].max_raw)
    out[:, 1] = _ratio_code(s33, s55, f["r33_55"])
    out[:, 2] = _ratio_code(s25, s55, f["r25_55"])
    out[:, 3] = _ratio_code(s15, s55, f["r15_55"])
    out[:, 4] = _sigma_code(e55, 0, f["sigma_ieta"])
    out[:, 5] = _sigma_code(e55, 1, f["sigma_iphi"])
    out[:, 6] = _ratio_code(seed, s55, f["seed_frac"])
    out[:, 7] = _ratio_code(second, s55, f["second_frac"])
    out[:, 8] = _ratio_code(swin - s55, s55, f["iso"])
    out[:, 9] = (e55 >= N_XTAL_MIN_COUNTS).sum(axis=(1, 2))
    return out


def codes_to_values(codes: np.ndarray) -> np.ndarray:
    """Feature codes to their real values (exact in float32: every format is <= 16 bits)."""
    scale = np.array([2.0**-fmt.frac for fmt in FEATURES.values()], dtype=np.float32)
    return codes.astype(np.float32) * scale


def compute_features(images: np.ndarray, lsb_gev: float, chunk: int = 65536) -> np.ndarray:
    """Feature values (n, F) float32, each exactly on the grid of its `FEATURES` format."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1] != images.shape[2] or images.shape[1] < 5:
        raise ValueError(f"images must be (n, N, N) with odd N >= 5, got shape {images.shape}")
    out = np.empty((len(images), len(FEATURES)), dtype=np.float32)
    for at in range(0, len(images), chunk):
        out[at : at + chunk] = codes_to_values(feature_codes(images[at : at + chunk], lsb_gev))
    return out
