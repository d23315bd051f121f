"""The graph rewrites before lowering keep every value (evaluate equal on fuzzed inputs)."""

from __future__ import annotations

import numpy as np
import pytest

from trigger_ml.interop import policy as P
from trigger_ml.interop.expand import expand

from . import graphs as G
from .test_ir import _x


@pytest.mark.parametrize("name", ["pad_transpose", "concat_dense", "bipolar_mlp", "tfc_like", "quant_rnd_wrap"])
def test_rewrites_keep_the_values(name):
    g = P.apply(G.ALL_EXACT[name](), P.PolicyOptions(max_enumerate=0)).graph
    e = expand(g)
    x = _x(g, 1000)
    np.testing.assert_array_equal(e.evaluate(x)[0], g.evaluate(x)[0])


def test_each_rewrite_happens():
    ops = lambda name: [n.op for n in expand(P.apply(G.ALL_EXACT[name]()).graph).nodes]  # noqa: E731
    assert "concat" not in ops("concat_dense") and ops("concat_dense").count("dense") == 4
    assert "bipolar" not in ops("bipolar_mlp")
    g = G.conv2d()
    g.nodes.insert(0, G.Node("pad", "p", ["x"], "xp", {"pads": ((1, 0), (0, 1))}))
    g.nodes[1].inputs = ["xp"]
    e = expand(g)
    assert [n.op for n in e.nodes][0] == "conv" and e.nodes[0].attrs["pads"] == ((2, 1), (1, 2))
