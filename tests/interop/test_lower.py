"""Lowering to hgq2 layers, checked at graph level: the float64 hgq2 model equals the post-policy
graph exactly on fuzzed words of the input format, for every op and rule; the layers are the ones
both hls4ml and da4ml convert exactly; what cannot be lowered is one error listing every node."""

from __future__ import annotations

import numpy as np
import pytest

from trigger_ml.errors import MismatchError, UnsupportedError
from trigger_ml.interop import lower as L
from trigger_ml.interop import policy as P
from trigger_ml.interop.ir import Graph, Input, Node
from trigger_ml.layers import kind_of_class
from trigger_ml.vectors import extreme_inputs

from . import graphs as G

CASES = {
    **G.ALL_EXACT,
    "float_softmax": lambda: G.float_heads("softmax"),
    "float_sigmoid": lambda: G.float_heads("sigmoid"),
    "float_tanh": lambda: G.float_heads("tanh"),
    "cnn_pool": G.cnn_pool,
    "batchnorm_thresholds": lambda: G.batchnorm_quant(),
}


def _lowered(name: str):
    opts = P.PolicyOptions(max_enumerate=0) if name == "batchnorm_thresholds" else P.PolicyOptions()
    res = P.apply(CASES[name](), opts)
    return res, L.lower(res.graph, name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_lowering_equals_its_graph(name):
    res, low = _lowered(name)
    x = extreme_inputs(low.input_grid, low.input_shape, n_random=500, seed=3)
    assert L.check(res.graph, low, x) == len(x)
    for layer in low.model.layers:  # only classes both tools convert exactly (trigger_ml.layers.KINDS)
        kind = kind_of_class(type(layer).__name__)
        assert kind is not None and kind.hls4ml and kind.da4ml, type(layer).__name__
        assert type(layer).__name__ not in ("ReLU", "Activation", "BatchNormalization", "Softmax")


def test_relu_is_fused_and_quantizers_become_input_quantizers():
    _, low = _lowered("dense_relu")
    (dense,) = [la for la in low.model.layers if type(la).__name__ == "QDense"]
    assert dense.activation.__name__ == "relu" and dense.enable_iq
    _, low = _lowered("float_sigmoid")
    names = [type(la).__name__ for la in low.model.layers]
    assert names.count("QDense") == 2 and "QUnaryFunctionLUT" in names
    lut = next(la for la in low.model.layers if type(la).__name__ == "QUnaryFunctionLUT")
    assert not lut._allow_heterogeneous_table


def test_thresholds_are_unit_quantizers_between_two_denses():
    res, low = _lowered("batchnorm_thresholds")
    assert any(n.op == "threshold" for n in res.graph.nodes)
    names = [type(la).__name__ for la in low.model.layers]
    assert names.count("QDense") == 2  # the BN dense folded into the first; units summed by the second


def test_quantizers_are_tightened_by_bounds():
    res, low = _lowered("quant_rnd_wrap")
    q = next(n for n in low.graph.nodes if n.op == "quant").attrs["q"].uniform()
    assert q.rounding == "TRN" or q.overflow == "WRAP"  # the dense output grid 2**-4 is finer: RND kept


def test_a_wrong_rule_is_a_mismatch_naming_the_tensor(monkeypatch):
    res, low = _lowered("merges")
    dense = next(la for la in low.model.layers if la.name == "b")
    dense.bias.assign(dense.bias.numpy() + 0.25)
    x = extreme_inputs(low.input_grid, low.input_shape, n_random=50)
    with pytest.raises(MismatchError, match="first differing tensor 'hb'"):
        L.check(res.graph, low, x)


def test_what_cannot_be_lowered_is_one_error_listing_every_node():
    g = Graph(
        "bad",
        [Input("x", (4,), G.q(1, 2, 2))],
        [
            Node("dense", "a", ["x"], "ha", {}, {"kernel": np.full((4, 3), 0.5), "bias": np.zeros(3)}),
            Node("clip", "c", ["ha"], "hc", {"lo": -0.3, "hi": 0.6}),
            Node("dense", "b", ["x"], "hb", {}, {"kernel": np.full((4, 2), 1 / 3), "bias": np.zeros(2)}),
            Node("sigmoid", "s", ["hb"], "hs"),
            Node("dense", "e", ["x"], "he", {}, {"kernel": np.full((4, 2), 0.25), "bias": np.zeros(2)}),
            Node("concat", "cat", ["ha", "he"], "hh", {"axis": -1}),
            Node("concat", "cat2", ["hc", "hs"], "y", {"axis": -1}),  # inputs failed: not listed again
        ],
        ["y"],
    )
    with pytest.raises(UnsupportedError) as e:
        L.lower(g, "bad")
    msg = str(e.value)
    for node in ("'c' (clip)", "'b': weights", "'s' (sigmoid)", "'cat' (concat)"):
        assert node in msg, msg
    assert "apply the precision policy" in msg and "unequal shapes" in msg and "cat2" not in msg


def test_clip_to_a_format_range_is_a_saturating_quantizer():
    g = Graph(
        "clip",
        [Input("x", (3,), G.q(1, 3, 2))],
        [Node("clip", "c", ["x"], "y", {"lo": -2.0, "hi": 1.75})],
        ["y"],
    )
    low = L.lower(g, "clip")
    x = extreme_inputs(low.input_grid, low.input_shape, n_random=200)
    L.check(g, low, x)
