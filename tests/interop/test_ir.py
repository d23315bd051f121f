"""The import representation's own additions: save/load (JSON + npz, no pickle) and the user's layout."""

from __future__ import annotations

import numpy as np
import pytest

from trigger_ml.errors import SchemaError
from trigger_ml.interop import ir, policy
from trigger_ml.vectors import extreme_inputs

from . import graphs as G


def _x(g: ir.Graph, n: int = 200) -> np.ndarray:
    from trigger_ml.fixed import Fixed, Grid

    q = g.inputs[0].q
    fmt = q.uniform() if q is not None else Fixed(True, 5, 10)
    return extreme_inputs(Grid.uniform(int(np.prod(g.inputs[0].shape)), fmt), g.inputs[0].shape, n_random=n)


@pytest.mark.parametrize("name", sorted(G.ALL_EXACT))
def test_save_load_round_trip_keeps_every_value(tmp_path, name):
    g = G.ALL_EXACT[name]()
    fixed = policy.apply(g, policy.PolicyOptions(max_enumerate=10)).graph  # thresholds, Quant and Fixed attrs
    for graph, folder in ((g, tmp_path / "src"), (fixed, tmp_path / "fixed")):
        ir.save(graph, folder)
        back = ir.load(folder)
        x = _x(graph)
        np.testing.assert_array_equal(back.evaluate(x)[0], graph.evaluate(x)[0])
        assert [n.op for n in back.nodes] == [n.op for n in graph.nodes]
        assert back.inputs[0].layout == graph.inputs[0].layout


def test_softmax_table_and_lut_attrs_survive(tmp_path):
    fixed = policy.apply(G.float_heads("softmax")).graph
    ir.save(fixed, tmp_path / "g")
    back = ir.load(tmp_path / "g")
    sm = next(n for n in back.nodes if n.op == "softmax_table")
    assert sm.attrs["exp_out"] == next(n for n in fixed.nodes if n.op == "softmax_table").attrs["exp_out"]


def test_load_refuses_pickled_arrays_and_missing_files(tmp_path):
    ir.save(G.dense_relu(), tmp_path / "g")
    np.savez(tmp_path / "g" / ir.ARRAYS_NPZ, **{"node.0.w.kernel": np.array([object()], dtype=object)})
    with pytest.raises(SchemaError, match="not a saved import graph"):
        ir.load(tmp_path / "g")
    with pytest.raises(SchemaError):
        ir.load(tmp_path / "nothing")


@pytest.mark.parametrize(
    "layout,shape,perm",
    [("NCHW", (4, 5, 3), (1, 2, 0)), ("NCW", (7, 2), (1, 0)), ("NHWC", (4, 5, 3), None), ("", (4,), None)],
)
def test_layout_perm_and_user_arrays(layout, shape, perm):
    assert ir.layout_perm(layout, len(shape)) == perm
    inp = ir.Input("x", shape, None, layout)
    rng = np.random.default_rng(0)
    if perm is None:
        x = rng.normal(size=(3, *shape))
        np.testing.assert_array_equal(ir.to_channels_last(x, inp), x)
        return
    user = tuple(shape[perm.index(j)] for j in range(len(perm)))
    x_user = rng.normal(size=(3, *user))
    x = ir.to_channels_last(x_user, inp)
    assert x.shape[1:] == shape
    np.testing.assert_array_equal(np.moveaxis(x, -1, 1), x_user)  # channels back to the front


def test_softmax_table_inverse_is_hgq2s_with_epsilon():
    from trigger_ml.fixed import Fixed

    e_in, e_out = Fixed(False, 3, 4, "RND", "SAT"), Fixed(False, 1, 8, "RND_CONV", "SAT")
    i_in, i_out = Fixed(False, 3, 6, "RND", "SAT"), Fixed(False, 1, 8, "RND_CONV", "SAT")
    x = np.array([[0.0, -1.0, 2.0]])
    y = ir.softmax_table(x, e_in, e_out, i_in, i_out)
    d = e_in.quantize(x.max() - x)
    e = e_out.quantize(np.exp(-d))
    np.testing.assert_array_equal(y, e * i_out.quantize(1 / (i_in.quantize(e.sum()) + ir.SOFTMAX_EPS)))
