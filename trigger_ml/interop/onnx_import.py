"""QONNX and float ONNX -> an imported run directory (see `trigger_ml.interop.rundir`).

QONNX: the graph is read into exact steps (`graph`), lowered to hgq2 layers (`lower`), and the
Keras model is checked against qonnx's executor on fuzzed words of the input format before
anything is written: any difference is a `MismatchError`.

float ONNX: the graph is read likewise, then given fixed-point formats by the precision policy
below, lowered the same way, and compared with onnxruntime as fidelity (tolerance and argmax
agreement, never called exact). The compile and verify chain then checks the fixed-point model
bit for bit at every firmware level as usual.

Precision policy for float ONNX (`FloatPolicy`): inputs on the format given (default
fixed<16,6>: 1 sign, 5 integer, 10 fraction bits); each weight and bias tensor rounded to
`weight_bits` significant bits including the sign (fraction bits set by the tensor's largest
magnitude); each Dense block's output (hidden activations and the model output) rounded (RND) to
`act_frac_bits` fractional bits with the integer bits of its reachable range from interval
bounds over the input format, so it never overflows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.errors import SchemaError, require_equal
from trigger_ml.fixed import Fixed, Grid
from trigger_ml.interop import graph as G
from trigger_ml.interop import lower as Lw
from trigger_ml.interop.reference import OrtSession, QonnxExecutor, fidelity
from trigger_ml.interop.rundir import ImportedRun, model_name, write_run
from trigger_ml.train.golden import QuantizedModel
from trigger_ml.vectors import extreme_inputs

log = logging.getLogger(__name__)
N_CHECK = 2000  # fuzzed words of the input format checked at import


@dataclass(frozen=True)
class FloatPolicy:
    input_format: str = "fixed<16,6>"
    weight_bits: int = 16
    act_frac_bits: int = 10
    max_rel_error: float = 0.01  # fidelity: largest |fixed - float| / max |float output|
    argmax_agreement: float = 0.99  # fidelity: fraction of events whose argmax (one output: sign) agrees


def parse_format(text: str) -> Fixed:
    """`fixed<W,I>` or `ufixed<W,I>` (I includes the sign bit, as in ap_fixed), rounding RND, SAT."""
    return Fixed.parse(text).with_modes("RND", "SAT")


def load_onnx(src: Path):
    import onnx

    try:
        model = onnx.load(src)
    except Exception as exc:
        raise SchemaError(f"{src}: cannot read it as ONNX ({type(exc).__name__}: {exc})") from exc
    return G.normalise(model)


def _fuzz(fmt: Fixed, n_in: int, n: int) -> tuple[Grid, np.ndarray]:
    grid = Grid.uniform(n_in, fmt.with_modes("TRN", "WRAP"))
    return grid, extreme_inputs(grid, (n_in,), n_random=n, seed=1)


def _keras_predict(model, x: np.ndarray) -> np.ndarray:
    return QuantizedModel(model).predict(x)


def import_qonnx(src: Path, out: Path) -> dict[str, Any]:
    """Import a QONNX file; the lowered model must equal qonnx's executor exactly."""
    model = load_onnx(src)
    g = G.read_graph(model)
    low = Lw.lower(g)
    over = [(L.name, b) for L, b in zip(low.layers, low.acc_bits) if b > Lw.FLOAT32_EXACT_BITS]
    if over:
        raise SchemaError(
            f"{src}: accumulators of {over} need more than {Lw.FLOAT32_EXACT_BITS} bits, where qonnx's "
            "float32 executor is no longer exact",
            "reduce the bit widths; the exact check cannot hold",
        )
    keras_model = Lw.build_keras(low, g.n_in, model_name(src))
    grid, x = _fuzz(low.input_fmt, g.n_in, N_CHECK)
    y_ref = QonnxExecutor(model).predict(x)
    y = _keras_predict(keras_model, x)
    require_equal(
        y,
        y_ref,
        f"{src}: the lowered model differs from qonnx's executor",
        "report the graph: a lowering rule is wrong",
    )
    info = {
        "kind": "qonnx",
        "reference": "qonnx",
        "check": "exact",
        "import_check": {"compared": len(x), "mismatched": 0, "source": "qonnx.core.onnx_exec.execute_onnx"},
    }
    return write_run(out, ImportedRun(model_name(src), keras_model, low, grid, model, x, y_ref, info, src))


def import_float_onnx(src: Path, out: Path, policy: FloatPolicy = FloatPolicy()) -> dict[str, Any]:
    """Import a float ONNX file under the precision policy; fidelity against onnxruntime."""
    model = load_onnx(src)
    g = G.read_graph(model)
    if any(isinstance(s, (G.Quant, G.Bipolar)) for s in g.steps):
        raise SchemaError(f"{src}: has quantizers but no QONNX domain", "import it as QONNX")
    g.steps = apply_policy(g.steps, parse_format(policy.input_format), policy)
    low = Lw.lower(g)
    keras_model = Lw.build_keras(low, g.n_in, model_name(src))
    grid, x = _fuzz(low.input_fmt, g.n_in, N_CHECK)
    y_ref = OrtSession(model).predict(x)
    fig = fidelity(_keras_predict(keras_model, x), y_ref)
    info = {
        "kind": "onnx",
        "reference": "onnxruntime",
        "check": "fidelity",
        "policy": policy.__dict__,
        "tolerance": {"max_rel_error": policy.max_rel_error, "argmax_agreement": policy.argmax_agreement},
        "import_check": {**fig, "compared": len(x), "source": "onnxruntime (float32) on fuzzed inputs"},
    }
    return write_run(out, ImportedRun(model_name(src), keras_model, low, grid, model, x, y_ref, info, src))


def _round_bits(v: np.ndarray, bits: int) -> np.ndarray:
    """v rounded to `bits` significant bits including the sign (fraction bits from max |v|)."""
    m = float(np.max(np.abs(v), initial=0.0))
    if m == 0:
        return np.zeros_like(v)
    i = int(np.floor(np.log2(m))) + 1
    f = bits - 1 - i
    return np.clip(np.floor(v * 2.0**f + 0.5), -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1) * 2.0**-f


def apply_policy(steps: list[G.Step], in_fmt: Fixed, policy: FloatPolicy) -> list[G.Step]:
    """Insert the policy's quantizers into a float chain (weights rounded, each Dense block's output
    rounded to act_frac_bits with the integer bits of its reachable range)."""
    out: list[G.Step] = [G.Quant(in_fmt, "input")]
    for j, s in enumerate(steps):
        if isinstance(s, G.Dense):
            s = G.Dense(_round_bits(s.w, policy.weight_bits), _round_bits(s.b, policy.weight_bits), s.name)
        out.append(s)
        nxt = steps[j + 1] if j + 1 < len(steps) else None
        if nxt is None or isinstance(nxt, G.Dense):
            k = 0 if isinstance(s, G.Relu) else 1
            out.append(G.Quant(Fixed(bool(k), G.TRUNC_I, policy.act_frac_bits, "RND", "SAT"), f"act_{j}"))
    return out
