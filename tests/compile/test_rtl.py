"""da4ml tracing: the solver chosen per model (common-subexpression search up to CSE_MAX_ENTRIES
kernel entries, plain adder trees above, both exact), and a design da4ml's software model cannot
encode refused as unsupported (compile then skips the RTL and says why)."""

import numpy as np
import pytest

from trigger_ml.compile import rtl
from trigger_ml.errors import UnsupportedError
from trigger_ml.fixed import csd_digits
from trigger_ml.train.golden import QuantizedModel


def _dense(n_in, n_out, seed=0):
    import keras
    from hgq.config import QuantizerConfig
    from hgq.layers import QDense

    iq = QuantizerConfig("kif", "datalane", k0=1, i0=2, f0=3, round_mode="TRN", overflow_mode="WRAP", trainable=False)
    kq = QuantizerConfig("kif", "weight", k0=1, i0=1, f0=4, round_mode="TRN", overflow_mode="WRAP", trainable=False)
    inp = keras.Input((n_in,))
    layer = QDense(n_out, iq_conf=iq, kq_conf=kq, enable_oq=False, enable_ebops=False)
    model = keras.Model(inp, layer(inp))
    rng = np.random.default_rng(seed)
    layer.kernel.assign(rng.integers(-32, 32, (n_in, n_out)) / 16)
    return model


@pytest.mark.parametrize(("n_in", "n_out", "plain"), [(8, 4, False), (130, 128, True)])
def test_the_solver_follows_the_largest_kernel_and_both_are_exact(n_in, n_out, plain):
    model = _dense(n_in, n_out)
    assert rtl.largest_kernel(model) == n_in * n_out
    options, what = rtl.solver_for(model)
    assert (options is rtl.SOLVER_PLAIN) == plain and what.startswith("plain") == plain
    x = np.random.default_rng(1).integers(-32, 32, (200, n_in)) / 8
    ref = QuantizedModel(model).predict(x)
    got = np.asarray(rtl.trace(model, (1, 2, 3)).predict(x), np.float64).reshape(ref.shape)
    np.testing.assert_array_equal(got, ref)


def test_a_design_beyond_64_bit_words_is_unsupported_not_a_crash(monkeypatch):
    from da4ml.cmvm.types import CombLogic

    def too_wide(self, version=0):
        raise OverflowError("Python int too large to convert to C long")

    monkeypatch.setattr(CombLogic, "to_binary", too_wide)
    with pytest.raises(UnsupportedError, match="64 bits") as exc:
        rtl.trace(_dense(4, 2), (1, 2, 3))
    assert "--no-rtl" in exc.value.fix


def test_parallel_adds_counts_csd_digits_times_positions():
    import keras
    from hgq.config import QuantizerConfig
    from hgq.layers import QConv1D

    model = _dense(6, 3)
    k = np.asarray(model.layers[-1].qkernel, np.float64)  # multiples of 1/16
    assert rtl.parallel_adds(model) == int(csd_digits(np.round(k * 16).astype(np.int64)).sum())
    kq = QuantizerConfig("kif", "weight", k0=1, i0=1, f0=4, round_mode="TRN", overflow_mode="WRAP", trainable=False)
    inp = keras.Input((20, 2))
    conv = QConv1D(4, 3, kq_conf=kq, enable_oq=False, enable_ebops=False)  # 18 positions ('valid')
    conv_model = keras.Model(inp, conv(inp))
    conv.kernel.assign(np.full((3, 2, 4), 7 / 16))  # 7 = 8 - 1: two CSD digits each
    assert rtl.parallel_adds(conv_model) == 18 * 3 * 2 * 4 * 2


def test_a_design_beyond_any_fpga_is_not_traced(monkeypatch):
    model = _dense(8, 4)
    monkeypatch.setattr(rtl, "MAX_PARALLEL_ADDS", rtl.parallel_adds(model) - 1)
    with pytest.raises(UnsupportedError, match="shift-adds fully parallel") as exc:
        rtl.trace(model, (1, 2, 3))
    assert "C simulation" in exc.value.fix
    monkeypatch.setattr(rtl, "MAX_PARALLEL_ADDS", rtl.parallel_adds(model))
    rtl.trace(model, (1, 2, 3))  # at the limit: traced
