"""Interval bounds, grids and shapes of import graphs: every evaluated value lies inside its bounds
and on its grid, for every hand-built graph before and after the policy."""

from __future__ import annotations

import numpy as np
import pytest

from trigger_ml.fixed import Fixed
from trigger_ml.interop import analysis as A
from trigger_ml.interop import policy
from trigger_ml.interop.ir import Graph, Input, Node

from . import graphs as G
from .test_ir import _x

CASES = sorted(G.ALL_EXACT) + ["float_softmax", "float_tanh", "cnn_pool"]


def _graph(name: str) -> Graph:
    if name.startswith("float_"):
        return G.float_heads(name.removeprefix("float_"))
    if name == "cnn_pool":
        return G.cnn_pool()
    return G.ALL_EXACT[name]()


@pytest.mark.parametrize("name", CASES)
def test_values_lie_in_their_bounds_and_on_their_grids(name):
    g = policy.apply(_graph(name)).graph
    b, grids, shapes = A.bounds(g), A.grids(g), A.shapes(g)
    env = g.evaluate(_x(g, 400), keep=True)
    for t, v in env.items():
        lo, hi = b[t]
        assert v.shape[1:] == shapes[t] == lo.shape, t
        assert np.all(v >= lo) and np.all(v <= hi), t
        f = grids[t]
        assert f is not None, t
        np.testing.assert_array_equal(np.ldexp(v, f), np.round(np.ldexp(v, f)), err_msg=t)


def test_dense_bounds_are_reached_at_the_input_extremes():
    g = G.dense_relu()
    b = A.bounds(g)
    w = g.nodes[0].weights["kernel"]
    lo_in, hi_in = -4.0, 4.0 - 0.125
    x_hi = np.where(w[:, 0] > 0, hi_in, lo_in)[None]
    assert g.evaluate(x_hi, keep=True)["h"][0, 0] == b["h"][1][0]


def test_a_wrapping_quantizer_has_its_whole_range_and_float_ops_no_grid():
    q = G.q(1, 1, 2, "TRN", "WRAP")
    g = Graph(
        "w",
        [Input("x", (2,), G.q(1, 3, 0))],
        [Node("quant", "q", ["x"], "y", {"q": q}), Node("sigmoid", "s", ["y"], "z")],
        ["z"],
    )
    lo, hi = A.bounds(g)["y"]
    assert lo.tolist() == [-2.0, -2.0] and hi.tolist() == [1.75, 1.75]
    grids = A.grids(g)
    assert grids["y"] == 2 and grids["z"] is None


def test_average_grids_need_a_power_of_two_count():
    inp = Input("x", (4, 4, 1), G.q(0, 2, 2))
    two = Graph("a", [inp], [Node("avgpool", "p", ["x"], "y", {"pool": (2, 2)})], ["y"])
    three = Graph("b", [inp], [Node("avgpool", "p", ["x"], "y", {"pool": (3, 3), "strides": (1, 1)})], ["y"])
    assert A.grids(two)["y"] == 4 and A.grids(three)["y"] is None
    assert A.frac_of(np.array([0.5, 0.25])) == 2 and A.frac_of(np.array([1 / 3])) is None
    assert Fixed(False, 2, 2).max_value == A.quant_range(inp.q, (1,))[1][0]
