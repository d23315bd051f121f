"""The one fixed-point format type of the package: sign, integer and fraction bits, modes.

`Fixed(signed, integer, frac, rounding, overflow)` counts bits as hgq2 does (k, i, f): `integer`
excludes the sign bit, so the width is signed + integer + frac and the range is
[-2**integer, 2**integer - 2**-frac] (signed) or [0, 2**integer - 2**-frac]. Either count may be
negative (a format whose LSB lies above 1, or whose MSB lies below 1/2), as long as the width is
at least one bit.

Spellings (`parse`, `str`): hls4ml's `fixed<W,I>` / `ufixed<W,I>` and Vivado's `ap_fixed<W,I>` /
`ap_ufixed<W,I>`, where I counts the sign bit, optionally with `,<rounding>,<overflow>[,<sat bits>]`
(`AP_` prefixes accepted). `str()` prints hls4ml's spelling, leaving TRN and WRAP out.

Rounding (`ROUNDING`): TRN floor, TRN_ZERO toward zero, RND half up (floor(x + 1/2)), RND_ZERO
half toward zero, RND_MIN_INF half down, RND_INF half away from zero, RND_CONV half to even
(QKeras's tf.round, QONNX's ROUND). Overflow (`OVERFLOW`): WRAP two's complement, SAT clip,
SAT_SYM clip to a symmetric range (signed), SAT_ZERO zero on overflow. These are ap_fixed's modes;
hgq2 uses TRN, RND, RND_CONV, WRAP, SAT and SAT_SYM. Raw values travel as float64, exact for
widths up to 53 bits (`MAX_EXACT_BITS`); `quantize` is checked against a rational reference in
tests/test_fixed.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from trigger_ml.errors import SchemaError

ROUNDING = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV")
OVERFLOW = ("WRAP", "SAT", "SAT_SYM", "SAT_ZERO")
MAX_EXACT_BITS = 53
_SPELLING = re.compile(r"\s*(?:ap_)?(u?)fixed<\s*(\d+)\s*,\s*(-?\d+)\s*((?:,\s*\w+\s*)*)>\s*")


@dataclass(frozen=True)
class Fixed:
    """A fixed-point format (see the module docstring for the conventions)."""

    signed: bool
    integer: int  # integer bits, sign excluded (hgq2's i)
    frac: int  # fraction bits (hgq2's f)
    rounding: str = "TRN"
    overflow: str = "WRAP"

    def __post_init__(self) -> None:
        if self.width < 1:
            raise SchemaError(f"fixed-point format with {self.width} bits", "a format needs at least one bit")
        if self.rounding not in ROUNDING:
            raise SchemaError(f"unknown rounding mode {self.rounding!r}", f"use one of {', '.join(ROUNDING)}")
        if self.overflow not in OVERFLOW:
            raise SchemaError(f"unknown overflow mode {self.overflow!r}", f"use one of {', '.join(OVERFLOW)}")

    # ------------------------------------------------------------------ spellings

    @classmethod
    def parse(cls, text: str) -> Fixed:
        """`fixed<W,I>`, `ufixed<W,I>`, `ap_fixed<W,I,RND,SAT>`... (I counts the sign bit)."""
        m = _SPELLING.fullmatch(str(text))
        if not m:
            raise SchemaError(
                f"bad fixed-point format {text!r}",
                "write it as fixed<W,I> or ufixed<W,I> (I counts the sign bit), e.g. fixed<16,6>",
            )
        signed = m.group(1) != "u"
        width, ap_int = int(m.group(2)), int(m.group(3))
        modes = [s.strip().upper().removeprefix("AP_") for s in m.group(4).split(",") if s.strip()]
        rounding = modes[0] if len(modes) > 0 else "TRN"
        overflow = modes[1] if len(modes) > 1 else "WRAP"
        if width < 1:
            raise SchemaError(f"bad fixed-point format {text!r}: width {width}", "the width W is at least 1")
        return cls(signed, ap_int - int(signed), width - ap_int, rounding, overflow)

    @classmethod
    def from_kif(cls, k: Any, i: Any, f: Any, rounding: str = "TRN", overflow: str = "WRAP") -> Fixed:
        return cls(bool(int(k)), int(i), int(f), rounding, overflow)

    def __str__(self) -> str:
        modes = "" if (self.rounding, self.overflow) == ("TRN", "WRAP") else f",{self.rounding},{self.overflow}"
        return f"{'' if self.signed else 'u'}fixed<{self.width},{self.ap_integer}{modes}>"

    def ap(self) -> str:
        """The Vivado/Vitis HLS spelling, ap_fixed<W,I,AP_RND,AP_SAT> (modes always given)."""
        return f"ap_{'' if self.signed else 'u'}fixed<{self.width},{self.ap_integer},AP_{self.rounding},AP_{self.overflow}>"

    def with_modes(self, rounding: str | None = None, overflow: str | None = None) -> Fixed:
        return replace(self, rounding=rounding or self.rounding, overflow=overflow or self.overflow)

    # ------------------------------------------------------------------ sizes and range

    @property
    def width(self) -> int:
        return int(self.signed) + self.integer + self.frac

    @property
    def ap_integer(self) -> int:
        """Integer bits with the sign bit (hls4ml's and ap_fixed's I)."""
        return self.integer + int(self.signed)

    @property
    def kif(self) -> tuple[int, int, int]:
        return int(self.signed), self.integer, self.frac

    @property
    def lsb(self) -> float:
        return float(np.ldexp(1.0, -self.frac))

    @property
    def min_raw(self) -> int:
        if not self.signed:
            return 0
        low = -(1 << (self.width - 1))
        return low + 1 if self.overflow == "SAT_SYM" else low

    @property
    def max_raw(self) -> int:
        return (1 << (self.width - int(self.signed))) - 1

    @property
    def min_value(self) -> float:
        return float(np.ldexp(float(self.min_raw), -self.frac))

    @property
    def max_value(self) -> float:
        return float(np.ldexp(float(self.max_raw), -self.frac))

    # ------------------------------------------------------------------ raw <-> value

    def to_raw(self, x: Any) -> np.ndarray:
        """Values on this grid -> raw integers (int64); off-grid or out-of-range values raise."""
        v = np.ldexp(np.asarray(x, dtype=np.float64), self.frac)
        if not np.all(np.isfinite(v)):
            raise ValueError(f"values for {self} contain NaN or infinity")
        if np.any(v != np.floor(v)):
            raise ValueError(f"values are not on the grid of {self} (LSB {self.lsb:g})")
        if v.size and (v.min() < self.min_raw or v.max() > self.max_raw):
            raise ValueError(f"values outside the range of {self} [{self.min_value:g}, {self.max_value:g}]")
        return v.astype(np.int64)

    def from_raw(self, raw: Any) -> np.ndarray:
        return np.ldexp(np.asarray(raw, dtype=np.float64), -self.frac)

    # ------------------------------------------------------------------ quantize

    def quantize_raw(self, x: Any) -> np.ndarray:
        """Raw integers (as float64) of the values of x assigned to this format, as ap_fixed assigns."""
        v = np.ldexp(np.asarray(x, dtype=np.float64), self.frac)
        r = _round(v, self.rounding)
        return _overflow(r, self)

    def quantize(self, x: Any) -> np.ndarray:
        """Values of x assigned to this format (exact in float64 up to `MAX_EXACT_BITS` bits)."""
        return np.ldexp(self.quantize_raw(x), -self.frac)

    def contains(self, x: Any) -> bool:
        """Whether every value of x lies on this grid and in range (quantize is the identity)."""
        x = np.asarray(x, dtype=np.float64)
        return bool(np.all(self.quantize(x) == x))


def quantize_kif(x: Any, k: Any, i: Any, f: Any, rounding: str = "TRN", overflow: str = "WRAP") -> np.ndarray:
    """Values of x quantized per element to the formats (k, i, f) (arrays broadcast against x), as
    `Fixed.quantize` does for one format; a zero-width element gives 0 (as hgq2 and HGQ v1 do)."""
    x = np.asarray(x, dtype=np.float64)
    k, i, f = (np.broadcast_to(np.asarray(a, np.int64), x.shape) for a in (k, i, f))
    if rounding not in ROUNDING or overflow not in OVERFLOW:
        raise SchemaError(f"unknown rounding/overflow {rounding}/{overflow}", f"use {ROUNDING} and {OVERFLOW}")
    width = k + i + f
    v = _round(np.ldexp(x, f), rounding)
    lo = np.where(k > 0, -np.ldexp(1.0, np.maximum(width - 1, 0)), 0.0)
    hi = np.ldexp(1.0, np.maximum(width - k, 0)) - 1
    if overflow == "SAT_SYM":
        lo = np.where(k > 0, lo + 1, lo)
    if overflow in ("SAT", "SAT_SYM"):
        r = np.clip(v, lo, hi)
    elif overflow == "SAT_ZERO":
        r = np.where((v < lo) | (v > hi), 0.0, v)
    else:
        span = np.ldexp(1.0, np.maximum(width, 0))
        r = np.mod(v - lo, span) + lo
    return np.where(width > 0, np.ldexp(r, -f), 0.0)


def _round(v: np.ndarray, mode: str) -> np.ndarray:
    if mode == "TRN":
        return np.floor(v)
    if mode == "TRN_ZERO":
        return np.trunc(v)
    if mode == "RND":
        return np.floor(v + 0.5)
    if mode == "RND_MIN_INF":
        return np.ceil(v - 0.5)
    if mode == "RND_ZERO":
        return np.where(v >= 0, np.ceil(v - 0.5), np.floor(v + 0.5))
    if mode == "RND_INF":
        return np.where(v >= 0, np.floor(v + 0.5), np.ceil(v - 0.5))
    return np.round(v)  # RND_CONV: numpy rounds half to even


def _overflow(r: np.ndarray, fmt: Fixed) -> np.ndarray:
    lo, hi = float(fmt.min_raw), float(fmt.max_raw)
    if fmt.overflow in ("SAT", "SAT_SYM"):
        return np.clip(r, lo, hi)
    if fmt.overflow == "SAT_ZERO":
        return np.where((r < lo) | (r > hi), 0.0, r)
    span = float(2**fmt.width)
    base = -(span / 2) if fmt.signed else 0.0  # WRAP: two's complement of the full width
    return np.mod(r - base, span) + base


def smallest_holding(values: Any, signed: bool | None = None, max_frac: int = 32) -> Fixed | None:
    """The narrowest format (integer bits >= 0) holding every value exactly, or None when the values
    need more than `max_frac` fraction bits (not on a power-of-two grid)."""
    v = np.asarray(values, np.float64).ravel()
    if not np.all(np.isfinite(v)):
        return None
    for f in range(max_frac + 1):
        ints = np.ldexp(v, f)
        if np.all(ints == np.round(ints)):
            break
    else:
        return None
    k = bool(np.any(ints < 0)) if signed is None else signed
    mag = max(float(ints.max(initial=0)) + 1, float(-ints.min(initial=0)) if k else 0.0, 1.0)
    n = max(int(np.ceil(np.log2(mag))), 1)
    return Fixed(k, max(n - f, 0), f)


def csd_digits(ints: np.ndarray) -> np.ndarray:
    """Number of non-zero canonical-signed-digit digits of each integer."""
    x = np.abs(np.asarray(ints, dtype=np.int64))
    n = np.zeros(x.shape, dtype=np.int64)
    while np.any(x):
        odd = (x & 1) == 1
        digit = np.where(odd, 2 - (x & 3), 0)  # +1 or -1 at odd positions, choosing -1 when x % 4 == 3
        n += odd
        x = (x - digit) >> 1
    return n


def needed_integer(lo: float, hi: float, frac: int, signed: bool) -> int:
    """Integer bits (sign excluded) a format with `frac` fraction bits needs to hold [lo, hi]."""
    mag = max(hi * 2.0**frac + 1, -lo * 2.0**frac if signed else 0.0, 1.0)
    return int(np.ceil(np.log2(mag))) - frac


@dataclass(frozen=True)
class Grid:
    """The formats of a model's flattened inputs, as runs of (count, format): `[(10, ufixed<8,0>)]`.

    Stored in manifests and run metrics as `[{"inputs": n, "format": "ufixed<8,0>"}, ...]`."""

    runs: tuple[tuple[int, Fixed], ...]

    @classmethod
    def uniform(cls, n: int, fmt: Fixed) -> Grid:
        return cls(((int(n), fmt),))

    @classmethod
    def of(cls, formats: list[Fixed]) -> Grid:
        """Consecutive equal formats merged into runs."""
        runs: list[tuple[int, Fixed]] = []
        for f in formats:
            if runs and runs[-1][1] == f:
                runs[-1] = (runs[-1][0] + 1, f)
            else:
                runs.append((1, f))
        return cls(tuple(runs))

    @property
    def n(self) -> int:
        return sum(n for n, _ in self.runs)

    def formats(self) -> list[Fixed]:
        return [f for n, f in self.runs for _ in range(n)]

    def to_json(self) -> list[dict[str, Any]]:
        return [{"inputs": n, "format": str(f)} for n, f in self.runs]

    @classmethod
    def from_json(cls, entries: list[dict[str, Any]]) -> Grid:
        try:
            return cls(tuple((int(e["inputs"]), Fixed.parse(e["format"])) for e in entries))
        except (KeyError, TypeError) as exc:
            raise SchemaError(
                f"bad input grid {entries!r}: {exc}",
                "re-create the run or firmware directory with this version of trigger-ml",
            ) from exc
