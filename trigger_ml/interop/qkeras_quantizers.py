"""Google QKeras quantizer configs -> hgq2's QKeras-style `quantized_bits` (exact mapping).

Pure Python (no Keras): the legacy reader parses the configs here and the rebuild process only
receives hgq2 keyword arguments.

Semantics (Google QKeras `qkeras/quantizers.py`, `quantized_bits.__call__` and
`quantized_relu.__call__`; tf.round rounds half to even):

    quantized_bits(bits, integer, symmetric, keep_negative, alpha=None):
        m = 2**(bits - keep_negative);  m_i = 2**integer
        xq = m_i * clip(round(x * m / m_i), keep_negative * (-m + symmetric), m - 1) / m
    quantized_relu(bits, integer)  (use_sigmoid=0, negative_slope=0):
        m = 2**bits;  m_i = 2**integer
        xq = m_i * clip(round(x * m / m_i) / m, 0, 1 - 1/m)

Google QKeras counts the sign bit in `bits`; hgq2's `quantized_bits(bits, integer, symmetric,
keep_negative)` counts it separately (`bits` and `integer` exclude the sign, rounding RND_CONV =
half to even, overflow SAT or SAT_SYM), so the exact map is

    QKeras quantized_bits(b, i, s, k)  ->  hgq2 quantized_bits(b - k, i, s, k)
    QKeras quantized_relu(b, i)        ->  hgq2 quantized_bits(b, i, keep_negative=False)

A numeric `alpha` in QKeras multiplies *after* quantizing (alpha * Q(x)), while hgq2's scaler
computes alpha * Q(x / alpha): they differ, so a non-unit alpha is accepted only on weights, where
the reader bakes alpha * Q(w) into the weights (power-of-two alpha only, so the baked values sit
exactly on the grid of quantized_bits(b - k, i + log2(alpha), s, k), which leaves them unchanged).
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# parameter order of Google QKeras's constructors (positional arguments in string configs)
_PARAMS: dict[str, tuple[str, ...]] = {
    "quantized_bits": (
        "bits",
        "integer",
        "symmetric",
        "keep_negative",
        "alpha",
        "use_stochastic_rounding",
        "scale_axis",
        "qnoise_factor",
        "var_name",
        "use_ste",
        "use_variables",
        "elements_per_scale",
        "min_po2_exponent",
        "max_po2_exponent",
        "post_training_scale",
    ),
    "quantized_relu": (
        "bits",
        "integer",
        "use_sigmoid",
        "negative_slope",
        "use_stochastic_rounding",
        "relu_upper_bound",
        "is_quantized_clip",
        "qnoise_factor",
        "var_name",
        "use_ste",
        "use_variables",
    ),
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "quantized_bits": {
        "bits": 8,
        "integer": 0,
        "symmetric": 0,
        "keep_negative": True,
        "alpha": None,
        "use_stochastic_rounding": False,
        "qnoise_factor": 1.0,
    },
    "quantized_relu": {
        "bits": 8,
        "integer": 0,
        "use_sigmoid": 0,
        "negative_slope": 0.0,
        "use_stochastic_rounding": False,
        "relu_upper_bound": None,
        "is_quantized_clip": True,
        "qnoise_factor": 1.0,
    },
}
# parameters that only affect training (gradients, variables) or naming: ignored
_INFERENCE_IRRELEVANT = {"var_name", "use_ste", "use_variables", "scale_axis"}

SUPPORTED_QUANTIZERS: dict[str, str] = {
    "quantized_bits": "bits >= 2 (>= 1 unsigned), any integer, symmetric 0/1, keep_negative; alpha None or 1 "
    "(weights also a power of two, baked); no stochastic rounding, qnoise_factor 1",
    "quantized_relu": "bits, integer; use_sigmoid=0, negative_slope=0, no stochastic rounding, qnoise_factor 1, "
    "relu_upper_bound only with is_quantized_clip=True (where QKeras ignores it)",
}


@dataclass(frozen=True)
class Mapped:
    """One QKeras quantizer mapped to hgq2: `hgq2` are the keyword arguments of hgq2's
    `qkeras.quantizers.quantized_bits`; `weight_scale` is the power-of-two alpha to bake into the
    weights (1.0 when there is nothing to bake); `original` is the QKeras spelling."""

    original: str
    hgq2: dict[str, Any]
    weight_scale: float = 1.0
    qkeras: dict[str, Any] | None = None  # the canonical QKeras arguments (for baking weights)

    def describe(self) -> str:
        h = self.hgq2
        base = (
            f"hgq2 quantized_bits({h['bits']}, {h['integer']}, symmetric={h['symmetric']}, "
            f"keep_negative={h['keep_negative']})"
        )
        return base + (f" on weights baked as {self.weight_scale:g} * Q(w)" if self.weight_scale != 1.0 else "")


def parse(conf: Any) -> tuple[str, dict[str, Any]]:
    """A QKeras quantizer as saved by Keras 2 (a `{"class_name", "config"}` dict or a string such
    as "quantized_bits(8,0,alpha=1)") -> (class name, arguments); ValueError if unreadable."""
    if isinstance(conf, dict) and "class_name" in conf:
        name, args = str(conf["class_name"]), dict(conf.get("config") or {})
    elif isinstance(conf, str):
        try:
            call = ast.parse(conf.strip(), mode="eval").body
            if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
                raise ValueError
            name = call.func.id
            params = _PARAMS.get(name, ())
            if len(call.args) > len(params) and name in _PARAMS:
                raise ValueError
            args = {params[j] if j < len(params) else f"arg{j}": ast.literal_eval(a) for j, a in enumerate(call.args)}
            args.update({kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg})
        except (SyntaxError, ValueError) as exc:
            raise ValueError(f"unreadable quantizer string {conf!r}") from exc
    else:
        raise ValueError(f"unreadable quantizer config {conf!r}")
    return name, {**_DEFAULTS.get(name, {}), **args}


def spelled(name: str, args: dict[str, Any]) -> str:
    shown = {
        k: v
        for k, v in args.items()
        if k not in _INFERENCE_IRRELEVANT and _DEFAULTS.get(name, {}).get(k, object()) != v
    }
    core = [str(args.get("bits")), str(args.get("integer"))] if name in _PARAMS else []
    rest = [f"{k}={v!r}" for k, v in shown.items() if k not in ("bits", "integer")]
    return f"{name}({', '.join(core + rest)})"


def _is_one(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and float(v) == 1.0)


def _po2_exponent(v: Any) -> int | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
        e = math.log2(float(v))
        if e == int(e):
            return int(e)
    return None


def map_quantizer(conf: Any, *, on_weights: bool) -> tuple[Mapped | None, list[str]]:
    """Map one QKeras quantizer; returns (mapping, []) or (None, reasons it is unsupported)."""
    try:
        name, a = parse(conf)
    except ValueError as exc:
        return None, [str(exc)]
    text = spelled(name, a)
    if name not in SUPPORTED_QUANTIZERS:
        return None, [f"{text}: quantizer {name} is not supported"]
    why: list[str] = []
    if a.get("use_stochastic_rounding"):
        why.append("use_stochastic_rounding is not deterministic")
    if not _is_one(a.get("qnoise_factor")):
        why.append(f"qnoise_factor={a.get('qnoise_factor')} (partial quantization) is not a fixed-point quantizer")
    bits, integer = a.get("bits"), a.get("integer")
    if not isinstance(bits, int) or isinstance(bits, bool) or not isinstance(integer, int) or isinstance(integer, bool):
        why.append("bits and integer must be integers")
        return None, [f"{text}: {w}" for w in why]
    if name == "quantized_relu":
        if a.get("use_sigmoid"):
            why.append("use_sigmoid (hard-sigmoid relu) has no fixed-point equivalent in hgq2")
        if a.get("negative_slope"):
            why.append("negative_slope != 0 (leaky relu) has no fixed-point equivalent in hgq2")
        if a.get("relu_upper_bound") is not None and not a.get("is_quantized_clip", True):
            why.append("relu_upper_bound with is_quantized_clip=False clips to a value off the grid")
        if bits < 1:
            why.append("bits must be >= 1")
        hgq2 = {"bits": bits, "integer": integer, "symmetric": False, "keep_negative": False}
        return (
            (None, [f"{text}: {w}" for w in why])
            if why
            else (Mapped(text, hgq2, 1.0, {**a, "keep_negative": False}), [])
        )
    k = bool(a.get("keep_negative"))
    if bits - k < 1:
        why.append("a 1-bit signed quantized_bits is QKeras's binary sign (+-1), not a fixed-point grid")
    for extra in ("elements_per_scale", "min_po2_exponent", "max_po2_exponent", "post_training_scale"):
        if a.get(extra) is not None:
            why.append(f"{extra} is only used with alpha='auto_po2'")
    alpha, scale = a.get("alpha"), 1.0
    if isinstance(alpha, str):
        why.append(
            f"alpha={alpha!r} computes a data-dependent scale per channel: re-export with alpha=1 "
            "(or None), or with the quantized weights baked in"
        )
    elif not _is_one(alpha):
        if not on_weights:
            why.append(
                f"alpha={alpha} on an activation scales after quantizing (alpha * Q(x)): no hgq2 quantizer equals it"
            )
        elif _po2_exponent(alpha) is None:
            why.append(f"alpha={alpha} is not a power of two: alpha * Q(w) is off every fixed-point grid")
        else:
            scale = float(alpha)
    if why:
        return None, [f"{text}: {w}" for w in why]
    e = _po2_exponent(scale) or 0
    hgq2 = {"bits": bits - int(k), "integer": integer + e, "symmetric": bool(a.get("symmetric")), "keep_negative": k}
    return Mapped(text, hgq2, scale, {**a, "keep_negative": k}), []


def qkeras_quantize(w: np.ndarray, m: Mapped) -> np.ndarray:
    """alpha * Q(w) by QKeras's quantized_bits formula (float64), for baking a power-of-two alpha
    into weights; exact because every step is a power-of-two scaling or an integer rounding."""
    a = m.qkeras or {}
    k = int(bool(a.get("keep_negative", True)))
    mm = 2.0 ** (int(a["bits"]) - k)
    mi = 2.0 ** int(a["integer"])
    lo = k * (-mm + int(bool(a.get("symmetric"))))
    q = mi * np.clip(np.round(np.asarray(w, np.float64) * mm / mi), lo, mm - 1) / mm
    return m.weight_scale * q
