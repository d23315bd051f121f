"""Round half to even (QKeras, QONNX ROUND) in da4ml's traced graph: hgq2 (float64) == da4ml's
interpreter == the Verilator simulation, on every word of the input grid (every tie hit)."""

from types import SimpleNamespace

import numpy as np
import pytest

from trigger_ml.compile import rtl
from trigger_ml.train.golden import QuantizedModel

pytestmark = pytest.mark.slow
TARGETS = [(1, 2, 2), (0, 2, 1), (1, 1, 0), (1, 0, 3), (1, 3, -1)]  # (k, i, f) of the rounding quantizers


def _qc(k, i, f, rnd, ovf, place="datalane"):
    from hgq.config import QuantizerConfig

    het = {"homogeneous_axis": (0,)} if place == "datalane" else {}
    return QuantizerConfig("kif", place, k0=k, i0=i, f0=f, round_mode=rnd, overflow_mode=ovf, trainable=False, **het)


def _grid(k, i, f):
    return np.arange(-k * 2 ** (i + f), 2 ** (i + f)) * 2.0**-f


@pytest.mark.parametrize("signed", [1, 0])
def test_lone_quantizers_round_half_to_even_exactly_over_every_input_word(signed, tmp_path):
    import keras
    from hgq.layers import Quantizer

    kin = (signed, 3, 5)
    x = _grid(*kin)[:, None]
    inp = keras.Input((1,), name="x")
    outs = [Quantizer(_qc(*t, "RND_CONV", ovf))(inp) for t in TARGETS for ovf in ("WRAP", "SAT", "SAT_SYM")]
    model = keras.Model(inp, keras.layers.Concatenate()(outs))
    ties = sum(int(np.sum((x * 2 ** (t[2] + 1)) % 2 == 1)) for t in TARGETS)
    assert ties > 100  # the test reaches the case it is about
    ref = QuantizedModel(model).predict(x)
    comb = rtl.trace(model, kin)
    np.testing.assert_array_equal(np.asarray(comb.predict(x), np.float64).reshape(ref.shape), ref)
    card = SimpleNamespace(
        firmware=SimpleNamespace(pipelining="levels", latency_cutoff=5.0, clock_ns=5.0, part="xcvu13p-flga2577-2-e")
    )
    rtl.write_verilog(comb, card, tmp_path / "rtl")
    sim, _, _ = rtl.build_rtl_sim(tmp_path / "rtl", comb)
    np.testing.assert_array_equal(sim.predict(x), ref)


def test_a_dense_layer_with_half_even_input_and_output_quantizers_is_exact():
    import keras
    from hgq.layers import QDense, Quantizer

    rng = np.random.default_rng(7)
    inp = keras.Input((4,), name="x")
    d = QDense(
        3,
        name="dense",
        iq_conf=_qc(1, 2, 2, "RND_CONV", "SAT"),
        kq_conf=_qc(1, 1, 3, "RND_CONV", "SAT_SYM", place="weight"),
        bq_conf=_qc(1, 2, 3, "RND_CONV", "WRAP", place="bias"),
    )
    model = keras.Model(inp, Quantizer(_qc(1, 3, 1, "RND_CONV", "SAT"))(d(inp)))
    d.set_weights(
        [rng.integers(-36, 37, size=(4, 3)) / 16.0, rng.integers(-40, 40, size=3) / 16.0] + d.get_weights()[2:]
    )
    x = rng.integers(-(2**8), 2**8, size=(20000, 4)) * 2.0**-5
    ref = QuantizedModel(model).predict(x)
    got = np.asarray(rtl.trace(model, (1, 3, 5)).predict(x), np.float64).reshape(ref.shape)
    np.testing.assert_array_equal(got, ref)
