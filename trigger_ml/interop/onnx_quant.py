"""QONNX quantizers on the data path -> `ir` ops, exactly as qonnx's executor computes them.

Quant(x, scale s, zero point 0, bitwidth b; signed, narrow, rounding_mode) is, in qonnx 1.0,
q = R(clip(x / s, lo, hi)) and y = q * s with x / s in float32 (the file's dtype).
- s a power of two (per element allowed): `quant` with f = -log2 s, b bits (sign included), the
  rounding mode (ROUND/HALF_EVEN -> RND_CONV, FLOOR -> TRN, DOWN -> TRN_ZERO, HALF_UP -> RND_INF,
  HALF_DOWN -> RND_ZERO) and SAT (narrow signed: SAT_SYM; narrow unsigned: SAT and a `clip` at
  (2**b - 2) s). x / s is then exact in float32, so this is qonnx's arithmetic bit for bit.
- any other positive s (per element allowed; CEIL and UP rounding too): `threshold` with
  out_bias lo * s, out_scale s and, per element, the thresholds t_k = the smallest float32 x with
  R(fl32(x / s)) >= k, k = lo+1 .. hi: x -> R(fl32(x / s)) is monotone, so counting thresholds is
  the executor's own function on every float32 input, and q * s is exact in float64 (b + 24 bits).
  Where fl32(x / s) rounds across a rounding boundary the executor differs from exact arithmetic:
  the exact boundary c s (c an integer or half-integer: exact in float64) is kept beside
  (`attrs['boundary']`, `attrs['strict']`), the float32 thresholds that differ from it are counted
  (`float32_decided`), and `onnx_exact.tighten` puts the thresholds on the input's grid: qonnx's
  when the input fits float32 (the executor holds it exactly), the exact ones when it does not.
- b = 1 signed, and BipolarQuant: `bipolar` (y = s if x >= 0 else -s).
Trunc (power-of-two scales): v1 y = s R(round(x / s) / 2**t), t = bits_in - bits_out: `quant` onto s
(RND_CONV), `scale_shift` 2**-t, `quant` onto s with R; v2 y = clip(R(round(x / s) s / S)) S:
`quant` onto s, `quant` onto S with the output bits. Their wide quantizers (`attrs['wide']`) get
the integer bits of the reachable range later (`onnx_exact`).
MultiThreshold: `threshold` (the same comparison x >= t in float32 values; channel axis from
data_layout as qonnx reads it).
A Quant of a constant weight with a scale that is not a power of two also keeps its integer codes
(`weight_codes`): the dense/conv takes the codes and a `scale_shift` after it carries the scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trigger_ml.interop import ir
from trigger_ml.interop import onnx_load as L
from trigger_ml.interop.onnx_load import Refuse, Tensor, all_pow2

ROUNDING = {"ROUND": "RND_CONV", "HALF_EVEN": "RND_CONV", "FLOOR": "TRN", "DOWN": "TRN_ZERO", "HALF_UP": "RND_INF", "HALF_DOWN": "RND_ZERO"}  # fmt: skip
MODES = (*ROUNDING, "CEIL", "UP")
MAX_THRESHOLDS = 1 << 16  # elements x levels of one threshold node
WIDE_I = 40  # a wide quantizer's integer bits until the reachable range is known


def limits(signed: bool, narrow: bool, b: int) -> tuple[int, int]:
    """qonnx's min_int and max_int."""
    if signed:
        return -(2 ** (b - 1)) + int(narrow), 2 ** (b - 1) - 1
    return 0, 2**b - 1 - int(narrow)


def _boundary(k: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """R(v) >= k  <=>  v > c (strict) or v >= c: (c, strict) per level k, exact arithmetic."""
    half = k - 0.5
    if mode in ("ROUND", "HALF_EVEN"):
        return half, k % 2 == 1
    if mode == "FLOOR":
        return k.astype(np.float64), np.zeros(k.shape, bool)
    if mode == "CEIL":
        return k - 1.0, np.ones(k.shape, bool)
    if mode == "HALF_UP":
        return half, k <= 0
    if mode == "HALF_DOWN":
        return half, k > 0
    if mode == "DOWN":
        return np.where(k > 0, k, k - 1.0), k <= 0
    return np.where(k > 0, k - 1.0, k), k > 0  # UP


def quant_thresholds(s: np.ndarray, lo: int, hi: int, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """For q = R(clip(fl32(x / s), lo, hi)), per element of s and level k = lo+1 .. hi: the smallest
    float32 x reaching k (qonnx's formula), the exact boundary c s and whether it is strict
    (R(x / s) >= k <=> x > c s, or x >= c s), and how many float32 thresholds differ from exact."""
    from qonnx.custom_op.general.quant import resolve_rounding_mode

    rnd = resolve_rounding_mode(mode)
    s32 = np.asarray(s, np.float32)[..., None]
    k = np.arange(lo + 1, hi + 1)
    c, strict = _boundary(k, mode)
    exact = c * s32.astype(np.float64)  # c has <= 18 significant bits, s 24: exact in float64
    strict = np.broadcast_to(strict, exact.shape)

    def level(x):
        return rnd(np.clip(x / s32, lo, hi))

    x = exact.astype(np.float32)
    down_inf, up_inf = np.float32(-np.inf), np.float32(np.inf)
    for _ in range(200):
        down = level(np.nextafter(x, down_inf)) >= k
        up = level(x) < k
        if not down.any() and not up.any():
            break
        x = np.where(down, np.nextafter(x, down_inf), np.where(up, np.nextafter(x, up_inf), x))
    else:
        raise Refuse("thresholds of a Quant did not converge")
    t = x.astype(np.float64)
    prev = np.nextafter(x, down_inf).astype(np.float64)
    ok = np.where(strict, t > exact, t >= exact) & ~np.where(strict, prev > exact, prev >= exact)
    return t, exact, strict, int(np.sum(~ok))


def _params(r, node, a: dict[str, Any]) -> tuple[np.ndarray, int, bool, bool, str]:
    s, zp, bw = (np.asarray(r.const(node, j)) for j in (1, 2, 3))
    bad = [f"attribute {n!r} missing (qonnx requires it)" for n in ("signed", "narrow") if n not in a]
    mode = str(a.get("rounding_mode", "ROUND")).upper()
    if np.any(zp != 0):
        bad.append(f"zero point {np.ravel(zp)[:3].tolist()} (supported: 0)")
    bits = np.unique(bw)
    if len(bits) != 1 or bits[0] != int(bits[0]) or bits[0] < 1:
        bad.append(f"bit width {bits.tolist()[:4]} (one integer >= 1 is supported)")
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        bad.append(f"scale {np.ravel(s)[:3].tolist()} (positive scales are supported)")
    if mode not in MODES:
        bad.append(f"rounding_mode {mode} (supported: {', '.join(MODES)})")
    if bad:
        raise Refuse(", ".join(bad))
    return s, int(bits[0]), bool(a["signed"]), bool(a["narrow"]), mode


def quant(r, t: Tensor, s_ir: np.ndarray, b: int, signed: bool, narrow: bool, mode: str, out: str, origin):
    """The IR ops of y = R(clip(x / s, lo, hi)) s on IR tensor t (s in t's IR order)."""
    lo, hi = limits(signed, narrow, b)
    if all_pow2(s_ir) and mode in ROUNDING:
        f = -np.log2(s_ir).astype(np.int64)
        k = int(signed)
        q = ir.Quant(np.asarray(k), b - k - f, f, ROUNDING[mode], "SAT_SYM" if narrow and signed else "SAT")
        name = r.emit("quant", [t.name], out, {"q": q}, onnx=origin)
        if narrow and not signed:
            name = r.emit("clip", [name], out, {"lo": 0.0, "hi": hi * s_ir})
        return name
    n = int(np.size(s_ir)) * (hi - lo)
    if n > MAX_THRESHOLDS:
        raise Refuse(
            f"{b}-bit Quant with a scale that is not a power of two needs {n} thresholds (at most {MAX_THRESHOLDS})"
        )
    th, exact, strict, decided = quant_thresholds(s_ir, lo, hi, mode)
    attrs = {
        "out_scale": s_ir,
        "out_bias": lo * s_ir,
        "scale": s_ir,
        "codes": (lo, hi),
        "boundary": exact,
        "strict": strict,
        "float32_decided": decided,
    }
    return r.emit("threshold", [t.name], out, attrs, {"thresholds": th}, origin)


def op_Quant(r, node, a: dict[str, Any]) -> None:
    t = r.data(node)
    s, b, signed, narrow, mode = _params(r, node, a)
    s_ir = r.const_ir(s, t)
    origin = (node, node.input[0], node.output[0])
    if b == 1 and signed:  # qonnx executes a 1-bit signed Quant as bipolar
        out = r.emit("bipolar", [t.name], node.output[0], {"scale": s_ir}, onnx=origin)
    else:
        out = quant(r, t, s_ir, b, signed, narrow, mode, node.output[0], origin)
    r.same(node, t, out)


def op_BipolarQuant(r, node, a: dict[str, Any]) -> None:
    t = r.data(node)
    s = np.asarray(r.const(node, 1))
    if np.any(s <= 0):
        raise Refuse(f"scale {np.ravel(s)[:3].tolist()} (positive scales are supported)")
    out = r.emit(
        "bipolar", [t.name], node.output[0], {"scale": r.const_ir(s, t)}, onnx=(node, node.input[0], node.output[0])
    )
    r.same(node, t, out)


def _wide(f: np.ndarray, rounding: str) -> ir.Quant:
    f = np.asarray(f, np.int64)
    return ir.Quant(np.asarray(1), np.minimum(WIDE_I, 52 - f), f, rounding, "WRAP")


def op_Trunc(r, node, a: dict[str, Any]) -> None:
    t = r.data(node)
    vals = [np.asarray(r.const(node, j)) for j in range(1, len(node.input))]
    mode = str(a.get("rounding_mode", "FLOOR")).upper()
    if len(vals) not in (4, 5) or np.any(vals[1] != 0) or mode not in ROUNDING:
        raise Refuse("Trunc needs zero point 0 and a rounding mode in " + ", ".join(ROUNDING))
    s = vals[0]
    if not all_pow2(s) or (len(vals) == 5 and not all_pow2(vals[3])):
        raise Refuse("Trunc with a scale that is not a power of two")
    f = -np.log2(r.const_ir(s, t)).astype(np.int64)
    origin = (node, node.input[0], node.output[0])
    first = r.emit("quant", [t.name], node.output[0] + "__in", {"q": _wide(f, "RND_CONV"), "wide": True})
    if len(vals) == 4:  # v1
        shift = np.unique(vals[2] - vals[3])
        if len(shift) != 1:
            raise Refuse("Trunc v1 with per-element bit widths")
        scaled = r.emit(
            "scale_shift", [first], node.output[0] + "__s", weights={"scale": 2.0 ** -float(shift[0]), "shift": 0.0}
        )
        out = r.emit("quant", [scaled], node.output[0], {"q": _wide(f, ROUNDING[mode]), "wide": True}, onnx=origin)
    else:  # v2
        s_out = r.const_ir(vals[3], t)
        bits = np.unique(vals[4])
        if len(bits) != 1:
            raise Refuse("Trunc v2 with per-element bit widths")
        signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
        out = quant(
            r, Tensor(first, t.shape, t.perm), s_out, int(bits[0]), signed, narrow, mode, node.output[0], origin
        )
    r.same(node, t, out)


def op_MultiThreshold(r, node, a: dict[str, Any]) -> None:
    t = r.data(node)
    th = np.asarray(r.const(node, 1), np.float64)
    layout = a.get("data_layout") or {2: "NC", 3: "NWC", 4: "NCHW"}.get(len(t.shape), "")
    c = layout.index("C") if "C" in layout else 1
    if th.ndim != 2 or th.shape[0] not in (1, t.shape[c]):
        raise Refuse(f"thresholds of shape {th.shape} for {t.shape[c]} channels")
    t = r.to_perm(t, tuple(j for j in t.perm if j != c) + (c,))
    scale, bias = float(a.get("out_scale", 1.0)), float(a.get("out_bias", 0.0))
    attrs = {"out_scale": scale, "out_bias": bias}
    if not (all_pow2(np.asarray(scale)) and all_pow2(np.asarray(bias)) or scale == int(scale) and bias == int(bias)):
        attrs["float"] = "out_scale/out_bias off a power-of-two grid (qonnx: float32)"
    out = r.emit(
        "threshold", [t.name], node.output[0], attrs, {"thresholds": th}, (node, node.input[0], node.output[0])
    )
    r.same(node, t, out)


def weight_codes(r, node) -> None:
    """For a constant weight's Quant with a scale that is not a power of two: its integer codes,
    computed as qonnx does (x / s in the file's dtype, clip, round)."""
    from qonnx.custom_op.general.quant import resolve_rounding_mode

    a = L.attrs(node)
    w, s, zp, bw = (r.consts[i] for i in node.input[:4])
    if all_pow2(s) or np.any(zp != 0) or np.size(np.unique(bw)) != 1 or "signed" not in a or "narrow" not in a:
        return
    b = int(np.ravel(bw)[0])
    if b == 1 and a["signed"]:
        return
    lo, hi = limits(bool(a["signed"]), bool(a["narrow"]), b)
    codes = resolve_rounding_mode(str(a.get("rounding_mode", "ROUND")))(np.clip(w / s, lo, hi))
    r.codes[node.output[0]] = (np.asarray(codes, np.float64), np.broadcast_to(np.asarray(s, np.float64), codes.shape))


HANDLERS = {"Quant": op_Quant, "BipolarQuant": op_BipolarQuant, "Trunc": op_Trunc, "MultiThreshold": op_MultiThreshold}
