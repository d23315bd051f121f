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


@pytest.mark.parametrize("shift", [20, 41])
def test_a_constant_bound_on_a_scaled_variable_is_exact(shift):
    """da4ml 0.5.2 builds min_of/max_of's constant with the variable's own power-of-two factor and gets
    it wrong in the graph below factor 1 (every event differed); within exact_rounding it is exact."""
    from decimal import Decimal

    from da4ml.trace import FixedVariableArray, FixedVariableArrayInput, HWConfig, comb_trace

    from trigger_ml.compile.rounding import exact_rounding

    x = FixedVariableArrayInput((1,), hwconf=HWConfig(1, -1, -1)).quantize(0, 57, -32)
    z = x * 2.0**-shift  # the factor a stack of dense layers leaves (2^-41 after four in an imported MLP)
    xs = np.random.default_rng(0).integers(0, 2**25, (2000, 1)).astype(np.float64) * 2.0**32
    lo, hi = (
        Decimal(2) ** (45 - shift) + Decimal(2) ** (32 - shift),
        Decimal(2) ** (50 - shift) - Decimal(2) ** (32 - shift),
    )
    with exact_rounding():
        capped = FixedVariableArray(np.array([v.min_of(hi).max_of(lo) for v in z._vars.ravel()]), z.solver_options)
    got = np.asarray(comb_trace(x, capped).predict(xs), np.float64).ravel()
    np.testing.assert_array_equal(got, np.clip(xs.ravel() * 2.0**-shift, float(lo), float(hi)))
