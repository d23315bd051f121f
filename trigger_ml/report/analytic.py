"""Analytic per-layer estimate from the model and the compiled precisions (no synthesis).

For hls4ml-only projects (layers da4ml does not take) this is the only resource figure, and it
gives every model its per-layer breakdown. The model, stated in every figure's note:

- a multiplication by a constant weight w is a shift-and-add of its canonical signed digits
  (CSD): nd(w) - 1 adders of (input bits + weight bits) bits; zero weights cost nothing;
- each output sums its non-zero products (and the bias) in an adder tree of accumulator
  width: (terms - 1) adders;
- an adder of b bits is b LUTs (LUT + carry chain, as on Xilinx 6-input-LUT families);
- a convolution repeats this per output position; pooling, ReLU and quantizers are free
  here (comparators and wiring are small next to the multiplications).
It ignores sharing of common subexpressions (what da4ml exploits), so it is an upper bound for
fully parallel designs. Reuse factor R divides the multipliers by R.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trigger_ml.compile.rtl import kernel_positions
from trigger_ml.fixed import csd_digits
from trigger_ml.verify.trace import Fixed

MODEL = "CSD shift-adds of non-zero weights + adder trees at accumulator width, 1 LUT per adder bit, no sharing"


def _width(text: str | None, default: int) -> int:
    f = Fixed.parse(text) if text else None
    return f.width if f else default


def _frac(text: str | None) -> int:
    f = Fixed.parse(text) if text else None
    return f.frac if f else 0


def estimate(model, layers: list[dict[str, Any]], reuse_factor: int = 1) -> dict[str, Any]:
    """Per-layer and total estimate: multiplications, adders, LUTs, sparsity, bit widths."""
    rows = {r["layer"]: r for r in layers}
    per_layer = []
    for layer in model.layers:
        if not hasattr(layer, "qkernel"):
            continue
        r = rows.get(layer.name, {})
        k = np.asarray(layer.qkernel, dtype=np.float64)
        w_fmt = r.get("weight")
        f_w = _frac(w_fmt) if w_fmt else int(np.max(-np.floor(np.log2(np.abs(k[k != 0]) + 1e-300)), initial=0))
        ints = np.round(np.ldexp(k, f_w)).astype(np.int64)
        in_bits = _width(rows.get(f"{layer.name}_iq", {}).get("result"), 8)
        w_bits = _width(w_fmt, int(np.ceil(np.log2(np.abs(ints).max() + 1))) + 1)
        acc_bits = _width(r.get("accum"), in_bits + w_bits + 4)
        k2 = k.reshape(-1, k.shape[-1])  # (fan-in, outputs)
        nz = k2 != 0
        positions = kernel_positions(layer)
        digits = csd_digits(ints.reshape(k2.shape))
        mult_adders = int(np.sum(np.maximum(digits - 1, 0)))
        has_bias = getattr(layer, "qbias", None) is not None
        tree_adders = int(np.sum(np.maximum(nz.sum(axis=0) + int(has_bias) - 1, 0)))
        lut = positions * (mult_adders * (in_bits + w_bits) + tree_adders * acc_bits) / max(1, reuse_factor)
        per_layer.append(
            {
                "layer": layer.name,
                "class": type(layer).__name__,
                "weights": int(k.size),
                "nonzero": int(nz.sum()),
                "sparsity": float(1 - nz.mean()),
                "positions": positions,
                "input_bits": in_bits,
                "weight_bits": w_bits,
                "accum_bits": acc_bits,
                "multiplications": positions * int(nz.sum()),
                "adders": positions * (mult_adders + tree_adders),
                "lut": float(round(lut)),
            }
        )
    return {"model": MODEL, "layers": per_layer, "totals": {"lut": float(sum(r["lut"] for r in per_layer))}}
