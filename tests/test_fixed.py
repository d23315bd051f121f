"""The fixed-point type: quantize against a slow rational reference (every rounding and overflow
mode), spellings, raw <-> value, range, and the input grid."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_ml.errors import SchemaError
from trigger_ml.fixed import OVERFLOW, ROUNDING, Fixed, Grid, needed_integer, smallest_holding


def ref_round(v: Fraction, mode: str) -> int:
    """Round a rational to an integer, each mode spelled out (ap_fixed's definitions)."""
    fl = math.floor(v)
    frac = v - fl
    if mode == "TRN":
        return fl
    if mode == "TRN_ZERO":
        return fl if v >= 0 else math.ceil(v)
    if frac != Fraction(1, 2):
        nearest = fl + (1 if frac > Fraction(1, 2) else 0)
        if mode.startswith("RND"):
            return nearest
    up, down = fl + 1, fl  # a tie: v = down + 1/2
    return {
        "RND": up,
        "RND_ZERO": down if v > 0 else up,
        "RND_MIN_INF": down,
        "RND_INF": up if v > 0 else down,
        "RND_CONV": down if down % 2 == 0 else up,
    }[mode]


def ref_quantize(x: Fraction, fmt: Fixed) -> Fraction:
    r = ref_round(x * Fraction(2) ** fmt.frac, fmt.rounding)
    lo, hi = fmt.min_raw, fmt.max_raw
    if fmt.overflow in ("SAT", "SAT_SYM"):
        r = min(max(r, lo), hi)
    elif fmt.overflow == "SAT_ZERO":
        r = 0 if (r < lo or r > hi) else r
    else:
        span = 2**fmt.width
        base = -(span // 2) if fmt.signed else 0
        r = (r - base) % span + base
    return r / Fraction(2) ** fmt.frac


formats = (
    st.tuples(
        st.booleans(), st.integers(-4, 20), st.integers(-4, 20), st.sampled_from(ROUNDING), st.sampled_from(OVERFLOW)
    )
    .filter(lambda t: int(t[0]) + t[1] + t[2] >= 1)
    .map(lambda t: Fixed(*t))
)


@settings(max_examples=400, deadline=None)
@given(fmt=formats, num=st.integers(-(2**30), 2**30), den_exp=st.integers(0, 24))
def test_quantize_equals_the_rational_reference(fmt, num, den_exp):
    """Values on a dyadic grid (exact in float64), many on ties and beyond both ends of the range."""
    x = Fraction(num, 2**den_exp)
    got = fmt.quantize(np.array([float(x)]))[0]
    assert Fraction(got) == ref_quantize(x, fmt), (str(fmt), x)


@settings(max_examples=200, deadline=None)
@given(fmt=formats, k=st.integers(-(2**20), 2**20))
def test_ties_round_as_their_mode_says(fmt, k):
    """Exactly half an LSB between two grid points."""
    x = (2 * k + 1) / Fraction(2) ** (fmt.frac + 1)
    assert Fraction(fmt.quantize(float(x))) == ref_quantize(x, fmt)


def test_round_half_to_even_on_the_ties_of_a_small_format():
    fmt = Fixed(True, 2, 1, "RND_CONV", "SAT")  # fixed<4,3>: -4 .. 3.5 in steps of 0.5
    x = np.array([0.25, 0.75, 1.25, -0.25, -0.75, 3.75, 3.6, -4.25, -5.0])
    np.testing.assert_array_equal(fmt.quantize(x), [0.0, 1.0, 1.0, 0.0, -1.0, 3.5, 3.5, -4.0, -4.0])


@settings(max_examples=200, deadline=None)
@given(fmt=formats, data=st.data())
def test_raw_and_value_round_trip_on_the_grid(fmt, data):
    raw = data.draw(st.integers(fmt.min_raw, fmt.max_raw))
    v = fmt.from_raw(raw)
    assert fmt.to_raw(v) == raw and fmt.contains(v)
    assert fmt.min_value <= v <= fmt.max_value


@pytest.mark.parametrize(
    "text,kif,modes,back",
    [
        ("fixed<16,6>", (1, 5, 10), ("TRN", "WRAP"), "fixed<16,6>"),
        ("ufixed<8,0>", (0, 0, 8), ("TRN", "WRAP"), "ufixed<8,0>"),
        ("ap_fixed<9,2,AP_RND_CONV,AP_SAT>", (1, 1, 7), ("RND_CONV", "SAT"), "fixed<9,2,RND_CONV,SAT>"),
        ("fixed<9,2,TRN,WRAP,0>", (1, 1, 7), ("TRN", "WRAP"), "fixed<9,2>"),
        ("ufixed<4,6>", (0, 6, -2), ("TRN", "WRAP"), "ufixed<4,6>"),
        ("fixed<3,-2>", (1, -3, 5), ("TRN", "WRAP"), "fixed<3,-2>"),
        (" ap_ufixed< 5 , 5 , RND , SAT_SYM > ", (0, 5, 0), ("RND", "SAT_SYM"), "ufixed<5,5,RND,SAT_SYM>"),
    ],
)
def test_spellings_parse_and_print(text, kif, modes, back):
    f = Fixed.parse(text)
    assert f.kif == kif and (f.rounding, f.overflow) == modes and str(f) == back
    assert Fixed.parse(str(f)) == f and Fixed.parse(f.ap()) == f


@pytest.mark.parametrize(
    "text", ["fixed<0,0>", "int<8>", "fixed<8>", "fixed<8,2,FLOOR,SAT>", "fixed<8,2,RND,CLIP>", "fixed<a,b>", ""]
)
def test_bad_spellings_are_one_clear_error(text):
    with pytest.raises(SchemaError) as exc:
        Fixed.parse(text)
    assert exc.value.fix


def test_range_and_sizes():
    f = Fixed(True, 3, 2, overflow="SAT_SYM")
    assert (f.width, f.ap_integer, f.lsb, f.min_value, f.max_value) == (6, 4, 0.25, -7.75, 7.75)
    assert Fixed(True, 3, 2).min_value == -8.0 and Fixed(False, 3, 2).min_value == 0.0
    with pytest.raises(ValueError, match="not on the grid"):
        Fixed(False, 3, 2).to_raw(0.1)
    with pytest.raises(ValueError, match="outside the range"):
        Fixed(False, 3, 2).to_raw(-0.25)


def test_smallest_holding_and_needed_integer():
    assert smallest_holding([0.5, -1.25, 3.0]) == Fixed(True, 2, 2)
    assert smallest_holding([0.0]) == Fixed(False, 1, 0)
    assert smallest_holding([0.1]) is None
    assert needed_integer(-3.0, 5.5, 1, True) == 3 and needed_integer(0, 7.5, 1, False) == 3


def test_grid_runs_and_json():
    g = Grid.of([Fixed(False, 1, 8)] * 3 + [Fixed(False, 4, 6)])
    assert g.runs == ((3, Fixed(False, 1, 8)), (1, Fixed(False, 4, 6))) and g.n == 4
    assert Grid.from_json(g.to_json()) == g
    assert g.to_json() == [{"inputs": 3, "format": "ufixed<9,1>"}, {"inputs": 1, "format": "ufixed<10,4>"}]
    with pytest.raises(SchemaError):
        Grid.from_json([{"inputs": 3}])
