"""The exactness rule for a monotone per-channel float op before a quantizer: a dyadic rescale
proven word by word, else thresholds; equal to the float64 reference on every reachable word,
ties included."""

from __future__ import annotations

import numpy as np
import pytest

from trigger_ml.fixed import quantize_kif
from trigger_ml.interop.exact_rule import replace_monotone
from trigger_ml.interop.ir import Node

from . import graphs as G

WORDS = np.ldexp(np.arange(-64, 64), -1)  # x on 2**-1 in [-32, 31.5]
BOUNDS = (np.array([-32.0]), np.array([31.5]))


def _ref(x, a, b, relu, q):
    z = x * a + b
    return q(np.maximum(z, 0.0) if relu else z)


def _replaced(res, x):
    if res["kind"] == "rescale":
        return x * res["scale"][0] + res["shift"][0]
    n = Node("threshold", "t", ["x"], "y", {"out_scale": res["out_scale"], "out_bias": res["out_bias"]})
    n.weights["thresholds"] = res["thresholds"]
    return n.attrs["out_bias"] + n.attrs["out_scale"] * (x[:, None, None] >= res["thresholds"][None]).sum(-1)[:, 0]


@pytest.mark.parametrize("a", [1 / 3, 1 / 7, 0.1, 2 / 3, -0.3, 1.7])
@pytest.mark.parametrize("rounding", ["RND_CONV", "RND", "TRN"])
@pytest.mark.parametrize("relu", [False, True])
def test_replacement_equals_the_float64_reference_on_every_word(a, rounding, relu):
    q = G.q(0 if relu else 1, 3, 0, rounding, "SAT")
    for max_words in (1 << 20, 0):  # enumerated (rescale preferred), and thresholds by bisection
        res = replace_monotone(BOUNDS, 1, np.array([a]), np.array([0.25]), relu, q, max_words)
        assert res is not None
        y = _ref(WORDS, a, 0.25, relu, q)
        got = q(np.maximum(_replaced(res, WORDS), 0) if relu and res["kind"] == "rescale" else _replaced(res, WORDS))
        np.testing.assert_array_equal(got, y)
        if max_words == 0:
            assert res["kind"] == "threshold" and res["detail"]["float32_decides"] is None


def test_exact_ties_half_to_even_need_thresholds():
    """x / 3 lands exactly on .5 in float64 for 22 words: half to even goes both ways, which no
    rescale x * c + d reproduces; thresholds do."""
    q = G.q(1, 4, 0, "RND_CONV", "SAT")
    res = replace_monotone(BOUNDS, 1, np.array([1 / 3]), np.array([0.0]), False, q, 1 << 20)
    assert res["kind"] == "threshold"
    np.testing.assert_array_equal(q(_replaced(res, WORDS)), _ref(WORDS, 1 / 3, 0.0, False, q))


def test_float32_would_decide_ties_and_is_counted():
    """a = 1/2 + 2**-40 on x in [0, 31]: float64 keeps the 2**-40 (x / 2 is never a tie); float32
    drops it, so every odd word is a tie, half of which float32 rounds down. The rescale (1/2, 1/4) is
    exact and found."""
    q = G.q(1, 4, 0, "RND_CONV", "SAT")
    a = 0.5 + 2.0**-40
    res = replace_monotone((np.array([0.0]), np.array([31.0])), 0, np.array([a]), np.array([0.0]), False, q, 1 << 20)
    x = np.arange(0.0, 32.0)
    assert (
        res["kind"] == "rescale" and res["detail"]["float32_decides"] == 8
    )  # x = 1, 5, 9, ...: half to even rounds down
    np.testing.assert_array_equal(q(_replaced(res, x)), _ref(x, a, 0.0, False, q))


def test_saturation_edges_and_wrap():
    sat = G.q(1, 1, 2, "RND", "SAT")  # [-2, 1.75]: most words saturate
    res = replace_monotone(BOUNDS, 1, np.array([0.3]), np.array([0.1]), False, sat, 1 << 20)
    np.testing.assert_array_equal(sat(_replaced(res, WORDS)), _ref(WORDS, 0.3, 0.1, False, sat))
    wrap = G.q(1, 1, 2, "RND", "WRAP")  # wraps on the reachable range: not monotone, not replaced
    assert replace_monotone(BOUNDS, 1, np.array([0.3]), np.array([0.1]), False, wrap, 1 << 20) is None


def test_per_channel_scales_and_per_element_formats():
    lo, hi = np.full((2, 3), -4.0), np.full((2, 3), 3.75)
    q = G.q(1, 2, 2, "RND_CONV", "SAT")
    a, b = np.array([0.3, -1 / 3, 0.7]), np.array([0.0, 0.1, -0.2])
    res = replace_monotone((lo, hi), 2, a, b, False, q, 1 << 20)
    x = np.ldexp(np.arange(-16, 16), -2)[:, None]
    want = q(x * a + b)
    if res["kind"] == "rescale":
        got = q(x * res["scale"] + res["shift"])
    else:
        got = res["out_bias"] + res["out_scale"] * (x[..., None] >= res["thresholds"]).sum(-1)
    np.testing.assert_array_equal(got, want)
    assert quantize_kif(0.5, 1, 2, 2) == 0.5
