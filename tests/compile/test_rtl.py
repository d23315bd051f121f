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


def test_output_fields_are_unpacked_from_raw_words_across_word_boundaries():
    rng = np.random.default_rng(3)
    for width in (1, 7, 32, 35, 53, 64):
        n = 9
        fields = [[int(v) for v in rng.integers(0, 2**width, n, dtype=np.uint64)] for _ in range(5)]
        bus = [sum(v << (i * width) for i, v in enumerate(row)) for row in fields]
        n_words = -(-n * width // 32)
        words = np.array([[(b >> (32 * j)) & 0xFFFFFFFF for j in range(n_words)] for b in bus], np.uint32)
        got = rtl.unpack_fields(words.view(np.int32), n, width)
        np.testing.assert_array_equal(got, np.array(fields, np.uint64))


@pytest.mark.slow
def test_outputs_wider_than_32_bits_simulate_exactly(tmp_path):
    """da4ml's binder unpacks fields of at most 32 bits (TFC_1W2A's affine head is 35): the output bus
    comes back as raw words, split here; the RTL equals the quantized model on fields of 40+ bits."""
    from types import SimpleNamespace

    import keras
    from hgq.config import QuantizerConfig
    from hgq.layers import QDense

    iq = QuantizerConfig("kif", "datalane", k0=1, i0=14, f0=8, round_mode="TRN", overflow_mode="WRAP", trainable=False)
    kq = QuantizerConfig("kif", "weight", k0=1, i0=3, f0=12, round_mode="TRN", overflow_mode="WRAP", trainable=False)
    inp = keras.Input((6,))
    layer = QDense(5, iq_conf=iq, kq_conf=kq, enable_oq=False, enable_ebops=False)
    model = keras.Model(inp, layer(inp))
    rng = np.random.default_rng(4)
    layer.kernel.assign(rng.integers(-(2**15), 2**15, (6, 5)) * 2.0**-12)  # 16-bit weights
    x = np.concatenate([rng.integers(-(2**22), 2**22, (500, 6)), np.full((2, 6), -(2**22)), np.full((2, 6), 2**22 - 1)])
    x = x * 2.0**-8
    ref = QuantizedModel(model).predict(x)
    comb = rtl.trace(model, (1, 14, 8))
    card = SimpleNamespace(
        firmware=SimpleNamespace(pipelining="levels", latency_cutoff=5.0, clock_ns=5.0, part="xcvu13p-flga2577-2-e")
    )
    rtl.write_verilog(comb, card, tmp_path / "rtl")
    sim, _, _ = rtl.build_rtl_sim(tmp_path / "rtl", comb)
    assert 40 <= sim.width <= rtl.MAX_OUT_BITS and sim.n_words > 5  # more than one word per output
    np.testing.assert_array_equal(sim.predict(x), ref)
    assert np.abs(ref).max() * 2.0**20 > 2**32  # the values use the high bits (20 fraction bits)


@pytest.mark.parametrize(
    ("k_in_i_f", "k_out_i_f", "match"),
    [((1, 30, 2), (1, 8, 8), "input is 33"), ((1, 6, 8), (1, 40, 13), "output is 54")],
)
def test_a_simulation_too_wide_is_refused_before_building(monkeypatch, k_in_i_f, k_out_i_f, match):
    import da4ml.codegen.rtl.rtl_model as rm

    monkeypatch.setattr(
        rm, "get_io_kifs", lambda comb: tuple(tuple(np.array([v]) for v in kif) for kif in (k_in_i_f, k_out_i_f))
    )
    with pytest.raises(UnsupportedError, match=match):
        rtl.check_widths(object())
