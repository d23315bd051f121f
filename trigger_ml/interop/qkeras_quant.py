"""Google QKeras quantizers -> import-graph steps and quantized weights, without `import qkeras`.

Sources: google/qkeras `qkeras/quantizers.py` (commit a71ea40217f7ef9e4a484a7d32235b54d437c78a,
and the later revision with `post_training_scale` that the peer files were saved with: the same
forward values), `qkeras/qnormalization.py` (commits 13c64d94 and 73aebd90),
`qkeras/qdense_batchnorm.py` (2c481af9), `qkeras/qconv2d_batchnorm.py` (25e7803b). At inference
(qnoise_factor 1) every quantizer returns x + stop_gradient(-x + xq) = xq; tf.round rounds half to
even. Forward values (QKeras's `bits` count the sign bit, `integer` does not):

- quantized_bits(bits, integer, symmetric, keep_negative, alpha): m = 2**(bits - keep_negative),
  xq = alpha * 2**integer * clip(round(x * m / 2**integer), keep_negative * (-m + symmetric), m - 1) / m
  = alpha * Quant(k=keep_negative, i=integer, f=bits-keep_negative-integer, RND_CONV, SAT or SAT_SYM);
  with bits - keep_negative == 0 it is the sign (0 -> +1), {0, 1} when unsigned.
- quantized_relu(bits, integer): xq = 2**integer * clip(round(x * 2**bits / 2**integer) / 2**bits, 0,
  1 - 2**-bits) = Quant(0, integer, bits - integer, RND_CONV, SAT); with is_quantized_clip=False and
  relu_upper_bound u, min(xq, u).
- quantized_po2(bits, max_value, quadratic_approximation, log2_rounding) and quantized_relu_po2:
  sign(x) * 2**clip(round(log2 |x|), min_exp, max_exp), log2 in float32 as log(x) / log(2); |x| below
  keras's epsilon 1e-7 gives 2**min_exp (never 0); exponent ranges from `_get_min_max_exponents`
  / quantized_relu_po2.__init__. Weights only: as an activation no fixed-point op equals it.
- binary(use_01, alpha): sign(x) with 0 -> +1 (or {0, 1}), times alpha; ternary(alpha, threshold):
  sign(x) * (|x| >= threshold) (threshold 0.33 by default, in float32), times alpha.

Weights are stored float and unquantized: the quantizers are applied here (float32, as QKeras),
and the graph holds the quantized values. Activations become `quant` (+ `scale_shift` for a
power-of-two alpha, `clip` for an upper bound), `bipolar` or `threshold` nodes.
"""

from __future__ import annotations

import ast
import math
from typing import Any

import numpy as np

from trigger_ml.fixed import MAX_EXACT_BITS, Fixed, quantize_kif
from trigger_ml.interop.ir import Quant
from trigger_ml.interop.keras_build import Call, Step
from trigger_ml.interop.keras_layers import ACTIVATIONS, activation_steps

F32 = np.float32
EPSILON = 1e-7  # keras.backend.epsilon()
MAX_BITS = MAX_EXACT_BITS  # bits and |integer| of a quantizer: a word float64 holds exactly

# constructor parameter order (positional arguments of string configs) and defaults
_PARAMS: dict[str, tuple[str, ...]] = {
    "quantized_bits": ("bits", "integer", "symmetric", "keep_negative", "alpha", "use_stochastic_rounding", "scale_axis",
                       "qnoise_factor", "var_name", "use_ste", "use_variables", "elements_per_scale",
                       "min_po2_exponent", "max_po2_exponent", "post_training_scale"),
    "quantized_relu": ("bits", "integer", "use_sigmoid", "negative_slope", "use_stochastic_rounding", "relu_upper_bound",
                       "is_quantized_clip", "qnoise_factor", "var_name", "use_ste", "use_variables"),
    "quantized_po2": ("bits", "max_value", "use_stochastic_rounding", "quadratic_approximation", "log2_rounding",
                      "qnoise_factor", "var_name", "use_ste", "use_variables"),
    "quantized_relu_po2": ("bits", "max_value", "negative_slope", "use_stochastic_rounding", "quadratic_approximation",
                           "log2_rounding", "qnoise_factor", "var_name", "use_ste", "use_variables"),
    "binary": ("use_01", "alpha", "use_stochastic_rounding"),
    "ternary": ("alpha", "threshold", "use_stochastic_rounding", "number_of_unrolls"),
}  # fmt: skip
_DEFAULTS: dict[str, dict[str, Any]] = {
    "quantized_bits": {"bits": 8, "integer": 0, "symmetric": 0, "keep_negative": True, "alpha": None},
    "quantized_relu": {"bits": 8, "integer": 0, "use_sigmoid": 0, "negative_slope": 0.0, "relu_upper_bound": None,
                       "is_quantized_clip": True},
    "quantized_po2": {"bits": 8, "max_value": None, "quadratic_approximation": False, "log2_rounding": "rnd"},
    "quantized_relu_po2": {"bits": 8, "max_value": None, "negative_slope": 0, "quadratic_approximation": False,
                           "log2_rounding": "rnd"},
    "binary": {"use_01": False, "alpha": None},
    "ternary": {"alpha": None, "threshold": None},
}  # fmt: skip
OTHER = {
    "stochastic_binary": "binary (the same at inference)",
    "stochastic_ternary": "ternary (the same at inference)",
    "quantized_tanh": "quantized_bits after a tanh Activation",
    "quantized_sigmoid": "quantized_bits after a sigmoid Activation",
    "quantized_ulaw": "quantized_bits",
    "quantized_hswish": "quantized_bits",
    "bernoulli": "binary",
}
SUPPORTED = (
    "quantized_bits (alpha None/1 or a power of two), quantized_relu (use_sigmoid 0, negative_slope 0), "
    "binary and ternary (numeric alpha/threshold), quantized_po2 and quantized_relu_po2 (weights only); "
    "no stochastic rounding, qnoise_factor 1"
)


def parse(conf: Any) -> tuple[str, dict[str, Any]]:
    """A quantizer as saved (`{"class_name", "config"}` or a string such as "quantized_bits(8,0,alpha=1)")
    -> (class name, arguments with the constructor's defaults); ValueError if unreadable. String values
    are Python literals (QKeras's safe_eval would pass `keep_negative=False` on as the string "False")."""
    if isinstance(conf, dict) and "class_name" in conf:
        name, args = str(conf["class_name"]), dict(conf.get("config") or {})
    elif isinstance(conf, str):
        try:
            call = ast.parse(conf.strip(), mode="eval").body
            if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
                raise ValueError
            name = call.func.id
            params = _PARAMS.get(name, ())
            if name in _PARAMS and len(call.args) > len(params):
                raise ValueError
            args = {params[j] if j < len(params) else f"arg{j}": ast.literal_eval(a) for j, a in enumerate(call.args)}
            args.update({kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg})
        except (SyntaxError, ValueError) as exc:
            raise ValueError(f"unreadable quantizer {conf!r}") from exc
    else:
        raise ValueError(f"unreadable quantizer {conf!r}")
    args = {
        k: (int(v) if isinstance(v, float) and v.is_integer() and k in ("bits", "integer") else v)
        for k, v in args.items()
    }
    return name, {**_DEFAULTS.get(name, {}), **args}


def spelled(name: str, a: dict[str, Any]) -> str:
    keys = [
        k
        for k in _PARAMS.get(name, ())
        if k in a and (k in ("bits", "integer") or a[k] != _DEFAULTS.get(name, {}).get(k, object()))
    ]
    keys = [k for k in keys if k not in ("qnoise_factor", "use_stochastic_rounding") or a[k] not in (1.0, False)]
    return f"{name}({', '.join(f'{k}={a[k]!r}' for k in keys)})"


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _po2(v: Any) -> int | None:
    if _number(v) and v > 0:
        e = math.log2(float(v))
        if e == int(e):
            return int(e)
    return None


def check(name: str, a: dict[str, Any], role: str) -> list[str]:
    """Why a quantizer cannot be imported for `role` ("weights" | "activation"), [] when it can."""
    if name in OTHER:
        return [f"{name} is not supported (nearest: {OTHER[name]})"]
    if name not in _PARAMS:
        return [f"quantizer {name} is not supported (supported: {SUPPORTED})"]
    why = []
    if a.get("use_stochastic_rounding"):
        why.append("use_stochastic_rounding is random in training")
    if a.get("qnoise_factor", 1.0) not in (1, 1.0, None):
        why.append(f"qnoise_factor={a['qnoise_factor']} mixes quantized and float values")
    if name in ("quantized_bits", "quantized_relu", "quantized_po2", "quantized_relu_po2"):
        if not isinstance(a.get("bits"), int) or isinstance(a.get("bits"), bool):
            return [f"bits={a.get('bits')!r} is not an integer"]
    if name in ("quantized_bits", "quantized_relu") and (
        not isinstance(a.get("integer"), int) or isinstance(a.get("integer"), bool)
    ):
        return [f"integer={a.get('integer')!r} is not an integer (a trained variable?)"]
    if "bits" in _PARAMS[name] and not 0 <= a["bits"] <= MAX_BITS:
        return [f"bits={a['bits']} is outside the allowed range 0..{MAX_BITS} (float64 holds {MAX_BITS} bits exactly)"]
    if name in ("quantized_bits", "quantized_relu") and not -MAX_BITS <= a["integer"] <= MAX_BITS:
        return [f"integer={a['integer']} is outside the allowed range {-MAX_BITS}..{MAX_BITS} integer bits"]
    alpha = a.get("alpha")
    if name in ("quantized_bits", "binary", "ternary"):
        if isinstance(alpha, str):
            why.append(
                f"alpha={alpha!r} is a scale computed from the data: re-export with alpha=1 (or with the scale baked into the weights)"
            )
        elif alpha is not None and not (_number(alpha) and alpha > 0):
            why.append(f"alpha={alpha!r}")
        elif alpha is not None and _po2(alpha) is None and name == "quantized_bits":
            why.append(f"alpha={alpha} is not a power of two: alpha * Q(x) is off every fixed-point grid")
    if name == "quantized_bits":
        if a["bits"] - int(bool(a.get("keep_negative", True))) < 0:
            why.append("bits must be at least 1 (signed) or 0 (unsigned)")
        for extra in ("elements_per_scale", "min_po2_exponent", "max_po2_exponent", "post_training_scale"):
            if a.get(extra) is not None:
                why.append(f"{extra} is for alpha='auto_po2'")
    elif name == "quantized_relu":
        if a.get("use_sigmoid"):
            why.append("use_sigmoid (a hard-sigmoid relu) is not supported")
        if a.get("negative_slope"):
            why.append("negative_slope != 0 (a leaky relu) is not supported")
        if a["bits"] < 1:
            why.append("bits must be >= 1")
    elif name in ("quantized_po2", "quantized_relu_po2"):
        if role != "weights":
            why.append(
                f"{name} as an activation gives powers of two (a logarithmic grid) that no fixed-point op equals; use quantized_bits or quantized_relu"
            )
        if a.get("log2_rounding", "rnd") not in ("rnd", "floor"):
            why.append(f"log2_rounding={a.get('log2_rounding')!r}")
        if a.get("negative_slope"):
            why.append("negative_slope != 0 is not supported")
        mv = a.get("max_value")
        if mv is not None and not (_number(mv) and mv >= 0):
            why.append(f"max_value={mv!r}")
    elif name == "ternary":
        t = a.get("threshold")
        if t is not None and not (_number(t) and t >= 0):
            why.append(f"threshold={t!r} (a non-negative number, or None for 0.33)")
    return why


# ----------------------------------------------------------------------------- weights (float32, as QKeras)


def _sign(x: np.ndarray) -> np.ndarray:
    s = np.sign(x)
    return s + (1 - np.abs(s))  # 0 -> +1


def _po2_exponents(name: str, a: dict[str, Any]) -> tuple[int, int]:
    mv = a.get("max_value")
    need = 1 if (mv is None or mv > 1) else 0  # _need_exponent_sign_bit_check
    bits = a["bits"] - 1 if name == "quantized_po2" else a["bits"]  # po2: one bit is x's sign
    lo, hi = -(2 ** (bits - need)), 2 ** (bits - need) - 1
    if a.get("quadratic_approximation"):
        hi = 2 * (hi // 2)
    return lo, hi


def po2_exponent(name: str, a: dict[str, Any], x_abs: np.ndarray) -> tuple[np.ndarray, float]:
    """QKeras's _clip_power_of_two on |x| (float32): the exponents, and how close (in the log2
    domain) the nearest value came to a rounding boundary."""
    lo, hi = _po2_exponents(name, a)
    eps, mv = F32(EPSILON), a.get("max_value")
    x_abs = x_abs.astype(F32)
    xf = np.where(x_abs < eps, eps, x_abs).astype(F32)
    if mv is not None:
        xf = np.where(xf >= F32(mv), F32(mv), xf).astype(F32)
    quad = bool(a.get("quadratic_approximation"))
    xi = np.sqrt(xf).astype(F32) if quad else xf
    with np.errstate(divide="ignore"):
        l2 = (np.log(xi).astype(F32) / F32(np.log(2.0))).astype(F32)
    floor = a.get("log2_rounding", "rnd") == "floor"
    r = np.floor(l2) if floor else np.round(l2)
    frac = l2.astype(np.float64) - np.floor(l2)
    margin = np.minimum(frac, 1 - frac) if floor else np.abs(frac - 0.5)
    live = (x_abs >= eps) & (r >= lo) & (r <= hi)  # where the rounding decides the exponent
    e = np.where(x_abs >= eps, (2.0 if quad else 1.0) * np.clip(r, lo, hi), lo)
    return e, float(margin[live].min()) if np.any(live) else math.inf


def quantize_weights(name: str, a: dict[str, Any], w: np.ndarray) -> tuple[np.ndarray, float]:
    """QKeras's forward value of quantizer `name` on stored weights w (float64 holding the float32
    values QKeras computes), and the po2 rounding margin (inf for the others)."""
    x = np.asarray(w, F32).astype(np.float64)
    alpha = 1.0 if a.get("alpha") is None else float(a["alpha"])
    if name == "quantized_bits":
        k = int(bool(a.get("keep_negative", True)))
        if a["bits"] - k > 0:
            sym = bool(a.get("symmetric"))
            q = quantize_kif(
                x, k, a["integer"], a["bits"] - k - a["integer"], "RND_CONV", "SAT_SYM" if sym and k else "SAT"
            )
        else:
            q = _sign(x) if k else (_sign(x) + 1) / 2
        return q * alpha, math.inf
    if name == "quantized_relu":
        q = quantize_kif(x, 0, a["integer"], a["bits"] - a["integer"], "RND_CONV", "SAT")
        if a.get("relu_upper_bound") is not None and not a.get("is_quantized_clip", True):
            q = np.minimum(q, float(F32(a["relu_upper_bound"])))
        return q, math.inf
    if name in ("quantized_po2", "quantized_relu_po2"):
        if name == "quantized_po2":
            e, margin = po2_exponent(name, a, np.abs(x))
            return _sign(x) * np.ldexp(1.0, e.astype(np.int64)).astype(F32), margin
        e, margin = po2_exponent(name, a, np.maximum(x, 0.0))
        return np.ldexp(1.0, e.astype(np.int64)).astype(F32).astype(np.float64), margin
    if name == "binary":
        s = _sign(x)
        return (s + 1) / 2 * alpha if a.get("use_01") else s * alpha, math.inf
    if name == "ternary":
        t = float(F32(0.33 if a.get("threshold") is None else a["threshold"]))
        return np.sign(x) * (np.abs(x) >= t) * alpha, math.inf
    raise ValueError(name)


# ----------------------------------------------------------------------------- activations


def _quant_steps(name: str, a: dict[str, Any]) -> list[Step]:
    alpha = 1.0 if a.get("alpha") is None else float(a["alpha"])
    if name == "quantized_bits":
        k = int(bool(a.get("keep_negative", True)))
        if a["bits"] - k == 0:
            return [_sign_step(k, alpha)]
        sym = bool(a.get("symmetric")) and k
        fmt = Fixed(bool(k), a["integer"], a["bits"] - k - a["integer"], "RND_CONV", "SAT_SYM" if sym else "SAT")
        steps = [Step("quant", {"q": Quant.of(fmt)})]
        if alpha != 1.0:
            steps.append(
                Step(
                    "scale_shift", weights=lambda n: {"scale": np.full(n, alpha), "shift": np.zeros(n)}, suffix="alpha"
                )
            )
        return steps
    if name == "quantized_relu":
        steps = [
            Step("quant", {"q": Quant.of(Fixed(False, a["integer"], a["bits"] - a["integer"], "RND_CONV", "SAT"))})
        ]
        if a.get("relu_upper_bound") is not None and not a.get("is_quantized_clip", True):
            steps.append(Step("clip", {"lo": 0.0, "hi": float(F32(a["relu_upper_bound"]))}, suffix="upper"))
        return steps
    if name == "binary":
        return [_sign_step(0 if a.get("use_01") else 1, alpha)]
    if name == "ternary":
        t = float(F32(0.33 if a.get("threshold") is None else a["threshold"]))
        lo = float(np.nextafter(-t, np.inf))  # x > -t  <=>  x >= nextafter(-t, +inf) in float64
        return [
            Step(
                "threshold",
                {"out_scale": alpha, "out_bias": -alpha},
                weights=lambda n: {"thresholds": np.tile([lo, t], (n, 1))},
            )
        ]
    raise ValueError(name)


def _sign_step(signed: int, alpha: float) -> Step:
    """sign(x) (0 -> +1) times alpha; unsigned: alpha * [x >= 0]."""
    if signed:
        return Step("bipolar", {"scale": alpha})
    return Step("threshold", {"out_scale": alpha, "out_bias": 0.0}, weights=lambda n: {"thresholds": np.zeros((n, 1))})


def activation(c: Call, conf: Any, where: str = "activation") -> list[Step] | None:
    """A QKeras activation (a quantizer, or a Keras activation name) -> steps; None after a problem."""
    if conf is None or (isinstance(conf, str) and "(" not in conf):  # a Keras activation name
        return activation_steps(c, conf.strip() if isinstance(conf, str) else conf, where)
    if isinstance(conf, dict) and str(conf.get("class_name", "")).lower() in ACTIVATIONS:  # a serialized one
        return activation_steps(c, conf, where)
    parsed = _parsed(c, conf, where, "activation")
    return None if parsed is None else _quant_steps(*parsed)


FLOAT = ("", {})  # a weight without a quantizer


def weight_quantizer(c: Call, conf: Any, role: str) -> tuple[str, dict[str, Any]] | None:
    """A weight quantizer's (name, arguments), FLOAT when there is none, None after a problem."""
    if conf is None:
        return FLOAT
    return _parsed(c, conf, role, "weights")


def _parsed(c: Call, conf: Any, where: str, use: str) -> tuple[str, dict[str, Any]] | None:
    """A quantizer's (name, arguments) checked for `use` ("activation" or "weights"); None after a
    problem (reported on `c`)."""
    try:
        name, a = parse(conf)
    except ValueError as exc:
        c.unsupported(f"{where}: {exc}", SUPPORTED)
        return None
    why = check(name, a, use)
    if why:
        c.unsupported(f"{where} {spelled(name, a)}: {'; '.join(why)}")
        return None
    return name, a


def quantized(c: Call, spec: tuple[str, dict[str, Any]], w: np.ndarray, role: str) -> np.ndarray:
    """Stored weights w through a quantizer from `weight_quantizer` (FLOAT: unchanged, noted)."""
    name, a = spec
    if not name:
        c.note(f"{role} has no quantizer: float weights")
        return w
    q, margin = quantize_weights(name, a, w)
    if margin < 1e-5:
        c.note(
            f"{role}: a weight's log2 lies {margin:.1e} from a {name} rounding boundary: TensorFlow's float32 log "
            "may round it the other way"
        )
    return q
