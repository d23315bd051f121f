"""Formats of the table ops the precision policy makes of float activations (`policy`, step 8).

- `lut_formats(fn, lo, hi, f, opts)`: sigmoid/tanh/selu as a `lut` (hgq2 QUnaryFunctionLUT): the input
  format holds exactly the words its input can reach (hls4ml indexes the table with every bit of
  the input word, so the table must have 2**width entries for that word: layer_coverage.md), at most
  `lut_max_bits`; the output format's fraction bits are `act_frac_bits`, else the nearest count (more
  first, up to `MAX_WIDEN` more, then fewer) where every table entry rounds alike in float32 and
  float64 (hls4ml builds the table in float32; hgq2's float64 model and da4ml in float64).
- `softmax_formats(lo, hi, f, n, opts)`: the four formats of hls4ml's stable table softmax (see the
  policy's docstring), checked the same way over every table word, and 1 / s against hgq2's
  1 / (s + 1e-7).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trigger_ml.errors import UnsupportedError
from trigger_ml.fixed import Fixed, needed_integer
from trigger_ml.interop.ir import LUT_FUNCTIONS, SOFTMAX_EPS, Quant


def _keras(name: str):
    """The Keras activation itself, in the precision of its argument (hls4ml and da4ml call it)."""

    def f(v: np.ndarray) -> np.ndarray:
        import keras

        return keras.ops.convert_to_numpy(getattr(keras.activations, name)(keras.ops.convert_to_tensor(v)))

    return f


# fn -> (float64 reference, float32 as hls4ml builds the table); saturating: large inputs reach the limits
FUNCTIONS = {
    "sigmoid": (LUT_FUNCTIONS["sigmoid"], lambda v: np.float32(1) / (np.float32(1) + np.exp(-v))),
    "tanh": (LUT_FUNCTIONS["tanh"], np.tanh),
    "selu": (_keras("selu"), _keras("selu")),
}
SATURATING = ("sigmoid", "tanh")  # and selu on non-positive inputs (-> -scale * alpha)
MAX_WIDEN = 4  # extra fraction bits tried to get away from float32 rounding ties


def words(fmt: Fixed) -> np.ndarray:
    """Every value of a format, ascending."""
    return fmt.from_raw(np.arange(fmt.min_raw, fmt.max_raw + 1))


def _input_format(lo: float, hi: float, f: int, max_bits: int, saturating: bool) -> tuple[Fixed, bool]:
    """The tight format of [lo, hi] on 2**-f, narrowed to max_bits (fraction bits dropped first,
    then the range saturated); whether it approximates."""
    signed = lo < 0
    i = needed_integer(lo, hi, f, signed)
    if int(signed) + i + f <= max_bits:
        return Fixed(signed, i, f, "TRN", "WRAP"), False
    if saturating:
        i = min(i, 4)  # sigmoid(16) and tanh(16) round to their limits at any table precision used here
    i = min(i, max_bits - int(signed))
    f2 = max_bits - int(signed) - i
    return Fixed(signed, i, f2, "RND", "SAT"), True


def lut_formats(fn: str, lo: float, hi: float, f: int, opts: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    f64, f32 = FUNCTIONS[fn]
    q_in, narrowed = _input_format(lo, hi, f, opts.lut_max_bits, fn in SATURATING or (fn == "selu" and hi <= 0))
    x = words(q_in)
    v = f64(x)
    v32 = f32(x.astype(np.float32)).astype(np.float64)
    # fraction bits: act_frac_bits, else more, else fewer: the first where every entry rounds alike in
    # float32 (hls4ml's table) and float64 (hgq2's float64 model, da4ml)
    tried = [*range(opts.act_frac_bits, opts.act_frac_bits + MAX_WIDEN + 1), *range(opts.act_frac_bits - 1, -1, -1)]
    for fo in tried:
        rnd = Fixed(True, 40, fo, "RND", "SAT")
        if np.array_equal(rnd.quantize(v), rnd.quantize(v32)):
            break
    else:
        raise UnsupportedError(
            f"a {fn} table on {q_in}: float32 and float64 round some entry differently at every output precision tried",
            "quantize the activation's output in the model (a quantizer after it)",
        )
    t = rnd.quantize(v)
    q_out = _fixed(float(t.min()), float(t.max()), fo)
    detail = {
        "q_in": str(q_in),
        "q_out": str(q_out),
        "table_size": 2**q_in.width,
        "input_narrowed": narrowed,
        "output_frac_bits": fo,
    }
    return {"q_in": Quant.of(q_in), "q_out": Quant.of(q_out)}, detail


def _fixed(lo: float, hi: float, f: int) -> Fixed:
    signed = lo < 0
    return Fixed(signed, max(needed_integer(lo, hi, f, signed), 1 - f - int(signed)), f, "RND", "SAT")


def softmax_formats(lo: float, hi: float, f: int, n: int, opts: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    span = max(hi - lo, 2.0**-f)
    for f_eo in range(opts.act_frac_bits, opts.act_frac_bits + MAX_WIDEN + 1):
        exp_out = Fixed(False, 1, f_eo, "RND_CONV", "SAT")
        i_zero = next(i for i in range(-f_eo, 12) if exp_out.quantize(math.exp(-(2.0 ** (i - 1)))) == 0)
        i_e = max(min(needed_integer(0.0, span, f, False), i_zero), 1 - f)
        f_e = min(f, opts.exp_table_bits - i_e)
        exp_in = Fixed(False, i_e, f_e, "RND" if f_e < f else "TRN", "SAT")
        d = words(exp_in)
        e64 = exp_out.quantize(np.exp(-d))
        e32 = exp_out.quantize(np.exp(-d.astype(np.float32)).astype(np.float64))
        if np.array_equal(e64, e32):
            break
    i_s = needed_integer(0.0, float(n), f_eo, False)
    f_s = min(f_eo, opts.inv_table_bits - i_s)
    inv_in = Fixed(False, i_s, f_s, "RND" if f_s < f_eo else "TRN", "SAT")
    s = words(inv_in)
    for f_io in range(opts.act_frac_bits, opts.act_frac_bits + MAX_WIDEN + 1):
        inv_out = Fixed(False, 1, f_io, "RND_CONV", "SAT")
        with np.errstate(divide="ignore"):
            ref = inv_out.quantize(1.0 / (s + SOFTMAX_EPS))
            plain = inv_out.quantize(np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), np.inf))
            s32 = s.astype(np.float32)
            f32 = inv_out.quantize(
                np.where(s32 > 0, np.float32(1) / np.where(s32 > 0, s32, 1), np.inf).astype(np.float64)
            )
        if np.array_equal(ref, plain) and np.array_equal(ref, f32):
            break
    detail = {
        "exp_in": str(exp_in),
        "exp_out": str(exp_out),
        "inv_in": str(inv_in),
        "inv_out": str(inv_out),
        "exp_table_size": 2**exp_in.width,
        "inv_table_size": 2**inv_in.width,
        "fragile_entries": int(np.sum(e64 != e32) + np.sum(ref != plain) + np.sum(ref != f32)),
    }
    return {"exp_in": exp_in, "exp_out": exp_out, "inv_in": inv_in, "inv_out": inv_out}, detail
