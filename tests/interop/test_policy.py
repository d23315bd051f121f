"""The precision policy: decisions, the exact-or-fidelity verdict, and its output equal to the source
where it says exact (every reachable word), close where it says fidelity."""

from __future__ import annotations

import numpy as np
import pytest

from trigger_ml.errors import SchemaError, UnsupportedError
from trigger_ml.fixed import Fixed
from trigger_ml.interop import analysis as A
from trigger_ml.interop import policy as P
from trigger_ml.interop.ir import Graph, Input, Node

from . import graphs as G
from .test_ir import _x


@pytest.mark.parametrize("name", sorted(G.ALL_EXACT))
def test_fixed_point_sources_stay_exact(name):
    g = G.ALL_EXACT[name]()
    res = P.apply(g)
    assert res.exact, res.summary()
    x = _x(g, 1000)
    np.testing.assert_array_equal(res.graph.evaluate(x)[0], g.evaluate(x)[0])
    assert all(f is not None for f in A.grids(res.graph).values())


def test_input_format_and_weight_rounding_make_a_float_mlp_fidelity():
    res = P.apply(G.float_heads("tanh"), P.PolicyOptions(input_format="fixed<12,4>", weight_bits=10))
    assert not res.exact
    assert res.graph.inputs[0].q.uniform() == Fixed(True, 3, 8, "RND", "SAT")
    became = [d.became for d in res.decisions]
    assert "kernel/bias rounded to 10 bits" in became and any(b.startswith("output quantized to") for b in became)
    d1 = next(n for n in res.graph.nodes if n.name == "d1")
    assert A.frac_of(d1.weights["kernel"]) is not None
    assert max(abs(d1.weights["kernel"]).max(), 1e-9) * 2**9 >= 2**8  # 10 significant bits used


def test_float_batch_norm_folds_into_its_dense_before_rounding():
    rng = np.random.default_rng(0)
    scale, shift = rng.uniform(0.5, 2, 4), rng.normal(size=4)
    w = rng.normal(size=(3, 4))
    g = Graph(
        "bn",
        [Input("x", (3,))],
        [
            Node("dense", "d", ["x"], "h", {}, {"kernel": w, "bias": np.zeros(4)}),
            Node("scale_shift", "bn", ["h"], "y", {}, {"scale": scale, "shift": shift}),
        ],
        ["y"],
    )
    res = P.apply(g, P.PolicyOptions(weight_bits=24))
    assert [n.op for n in res.graph.nodes] == ["dense", "quant"]
    np.testing.assert_allclose(
        res.graph.nodes[0].weights["kernel"], w * scale, rtol=0, atol=np.abs(w * scale).max() * 2**-22
    )


def test_batch_norm_before_a_quantizer_is_replaced_exactly():
    g = G.batchnorm_quant()
    for opts, kind in ((P.PolicyOptions(), "rescale"), (P.PolicyOptions(max_enumerate=0), "thresholds")):
        res = P.apply(g, opts)
        assert res.exact
        assert any(kind in d.became for d in res.decisions)
        x = _x(g, 3000)
        np.testing.assert_array_equal(res.graph.evaluate(x)[0], g.evaluate(x)[0])


def test_tfc_like_bipolar_mlp_with_batch_norms_is_exact():
    g = G.tfc_like()
    res = P.apply(g)
    assert res.exact and not any(n.op == "scale_shift" and n.name.startswith("bn") for n in res.graph.nodes)
    x = _x(g, 2000)
    np.testing.assert_array_equal(res.graph.evaluate(x)[0], g.evaluate(x)[0])


def test_average_over_3x3_with_a_quantizer_is_exact_and_without_one_fidelity():
    res = P.apply(G.avgpool_3x3())
    assert res.exact and "conv" in [n.op for n in res.graph.nodes]
    g = G.avgpool_3x3()
    g.nodes = [n for n in g.nodes if n.op != "quant"]
    g.nodes[1].inputs = ["h"]
    res = P.apply(g)
    assert not res.exact and any("output quantized" in d.became for d in res.decisions)


@pytest.mark.parametrize("head", ["softmax", "sigmoid", "tanh", "selu"])
def test_float_heads_become_tables_close_to_float(head):
    g = G.float_heads(head)
    res = P.apply(g)
    op = "softmax_table" if head == "softmax" else "lut"
    node = next(n for n in res.graph.nodes if n.op == op)
    dec = next(d for d in res.decisions if d.became.startswith(op))
    if op == "lut":
        assert node.attrs["q_in"].uniform().width <= 12 and dec.detail["table_size"] <= 4096
    else:
        assert dec.detail["exp_table_size"] <= 4096 and dec.detail["inv_table_size"] <= 4096
        assert node.attrs["exp_in"].overflow == "SAT" and not node.attrs["exp_in"].signed
    assert dec.detail.get("fragile_entries", 0) == 0
    x = _x(res.graph, 2000)
    y, y_float = res.graph.evaluate(x)[0], g.evaluate(x)[0]
    assert np.abs(y - y_float).max() <= 0.01 * np.abs(y_float).max()
    assert np.mean(y.argmax(1) == y_float.argmax(1)) >= 0.99


def test_a_selu_with_other_constants_is_named_not_tabulated():
    g = G.float_heads("selu")
    next(n for n in g.nodes if n.op == "selu").attrs["alpha"] = 1.0
    with pytest.raises(UnsupportedError, match="act"):
        P.apply(g)


def test_what_cannot_be_made_fixed_point_is_one_error_listing_all():
    g = Graph(
        "bad",
        [Input("x", (4, 4, 2), G.q(1, 2, 2))],
        [
            Node("avgpool", "p", ["x"], "a", {"pool": (3, 3), "strides": (2, 2), "pads": ((1, 1), (1, 1))}),
            Node("softmax", "s", ["a"], "y", {"axis": 0}),
        ],
        ["y"],
    )
    with pytest.raises(UnsupportedError) as e:
        P.apply(g)
    assert "'p'" in str(e.value) and "'s'" in str(e.value) and "several sizes" in str(e.value)
    with pytest.raises(SchemaError):
        P.PolicyOptions(weight_bits=30)
