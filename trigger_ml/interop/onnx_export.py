"""A trained run -> ONNX: the float twin as plain ONNX, the quantized model as QONNX, both checked.

The graphs are written directly with onnx.helper (tf2onnx is not a dependency; the models here are
Dense/ReLU chains): MatMul + Add (+ Relu) per Dense.

QONNX: each hgq2 QDense's weights and biases are its quantized values, each behind a `Quant` node
(scale 2**-f, zero point 0, the tensor's bit width: the values are on that grid and in range, so
the node carries the format and changes nothing). Each input quantizer of hgq2 (per-element
k, i, f; rounding; overflow) becomes: rounding by a `Quant` node with per-element scale 2**-f and a
bit width that cannot clip (RND adds half an LSB first and floors: hgq2's RND is floor(x + 1/2),
not QONNX's symmetric HALF_UP; RND_CONV is QONNX's ROUND; TRN is FLOOR), then the overflow in
standard ops: SAT and SAT_SYM as Max/Min, WRAP as x - 2**(i+k) * Floor((x + k 2**i) / 2**(i+k)).
The check runs qonnx's executor on the file and compares with the quantized Keras model (float64)
exactly on fuzzed words of the input format; the float check runs onnxruntime against the float
twin with |d| <= 1e-6 (1 + |y|).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.atomic import atomic_dir
from trigger_ml.compile.driver import read_run
from trigger_ml.errors import MismatchError, SchemaError, UnsupportedError
from trigger_ml.interop.lower import exact_fmt
from trigger_ml.interop.reference import OrtSession, QonnxExecutor
from trigger_ml.layout import ONNX_EXPORT, RunDir
from trigger_ml.train.fit import load_model
from trigger_ml.train.golden import QuantizedModel
from trigger_ml.train.models import input_grid, input_shape
from trigger_ml.vectors import extreme_inputs

log = logging.getLogger(__name__)
FLOAT_TOL = 1e-6
OPSET = 13
QONNX_DOMAIN = "qonnx.custom_op.general"
N_CHECK = 2000


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def name(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, base: str, value) -> str:
        from onnx import numpy_helper

        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value, np.float32), n))
        return n

    def node(self, op: str, inputs: list[str], base: str, domain: str = "", **attrs) -> str:
        from onnx import helper

        out = self.name(base)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **attrs))
        return out

    def model(self, x: str, y: str, n_in: int, n_out: int, qonnx: bool):
        from onnx import TensorProto, helper

        self.nodes[-1].output[0] = "y"
        g = helper.make_graph(
            self.nodes,
            "trigger_ml",
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", n_in])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])],
            self.inits,
        )
        ops = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid(QONNX_DOMAIN, 1)] if qonnx else [])
        m = helper.make_model(g, opset_imports=ops, producer_name="trigger-ml")
        m.ir_version = 8
        return m


def _chain(model) -> list[Any]:
    """The Dense-like layers of a Keras model in order; one error lists what is not exportable."""
    ok = {"InputLayer", "Flatten", "Dense", "QDense", "Activation"}
    bad = sorted({type(layer).__name__ for layer in model.layers} - ok)
    if bad or len(model.inputs) != 1 or len(model.input_shape) != 2:
        raise UnsupportedError(
            f"ONNX export supports Dense/ReLU chains on (batch, n) inputs; {model.name} has "
            f"{', '.join(bad) or 'another input shape'}",
            "export an MLP run (e.g. eg_mlp); the CNN and the autoencoder score are not exported",
        )
    return [layer for layer in model.layers if type(layer).__name__ in ("Dense", "QDense", "Activation")]


def _activation(b: _Builder, h: str, layer) -> str:
    name = getattr(layer.activation, "__name__", str(layer.activation))
    if name == "relu":
        return b.node("Relu", [h], "relu")
    if name != "linear":
        raise UnsupportedError(f"{layer.name}: activation {name} (export supports relu and linear)")
    return h


def float_onnx(model):
    """The float Keras model as ONNX (MatMul, Add, Relu)."""
    b = _Builder()
    h = "x"
    for layer in _chain(model):
        if type(layer).__name__ == "Dense":
            h = b.node("MatMul", [h, b.const(f"{layer.name}_w", layer.kernel.numpy())], "matmul")
            if layer.use_bias:
                h = b.node("Add", [h, b.const(f"{layer.name}_b", layer.bias.numpy())], "add")
        h = _activation(b, h, layer)
    if not b.nodes:
        h = b.node("Identity", [h], "identity")
    return b.model("x", h, int(model.input_shape[1]), int(model.output_shape[1]), qonnx=False)


def _tensor_quant(b: _Builder, base: str, v: np.ndarray) -> str:
    """A constant on its grid behind a Quant node carrying its format (identity on the values)."""
    fmt = exact_fmt(v)
    if fmt is None:
        raise UnsupportedError(f"{base}: quantized values are not on a power-of-two grid")
    return b.node(
        "Quant",
        [b.const(base, v), b.const("scale", 2.0**-fmt.frac), b.const("zero", 0.0), b.const("bits", fmt.width)],
        "quant",
        domain=QONNX_DOMAIN,
        signed=int(fmt.signed),
        narrow=0,
        rounding_mode="ROUND",
    )


def _datalane_quant(b: _Builder, h: str, q, n: int) -> str:
    """hgq2's fixed-point quantizer: a rounding Quant node, then the overflow in standard ops."""
    k, i, f = (np.broadcast_to(np.asarray(v, np.float64).reshape(-1), (n,)).copy() for v in q.kif)
    i = np.maximum(i, -f)
    rnd, ovf = q.round_mode.upper(), q.overflow_mode.upper()
    modes = {"TRN": "FLOOR", "RND": "FLOOR", "RND_CONV": "ROUND"}
    if rnd not in modes or ovf not in ("WRAP", "SAT", "SAT_SYM"):
        raise UnsupportedError(
            f"quantizer with rounding {rnd} and overflow {ovf} (export supports TRN, RND, "
            "RND_CONV and WRAP, SAT, SAT_SYM)"
        )
    if rnd == "RND":
        h = b.node("Add", [h, b.const("half_lsb", 2.0 ** -(f + 1))], "half_lsb")
    wide = int(np.max(i + f + k)) + 24  # no clipping in the rounding node
    h = b.node(
        "Quant",
        [h, b.const("scale", 2.0**-f), b.const("zero", 0.0), b.const("bits", wide)],
        "quant",
        domain=QONNX_DOMAIN,
        signed=1,
        narrow=0,
        rounding_mode=modes[rnd],
    )
    if ovf == "WRAP":
        span, lo = 2.0 ** (i + k), -k * 2.0**i
        t = b.node("Div", [b.node("Sub", [h, b.const("lo", lo)], "shift"), b.const("span", span)], "div")
        t = b.node("Mul", [b.node("Floor", [t], "floor"), b.const("span", span)], "wraps")
        return b.node("Sub", [h, t], "wrap")
    hi = 2.0**i - 2.0**-f
    lo = -k * (hi if ovf == "SAT_SYM" else 2.0**i)
    return b.node("Min", [b.node("Max", [h, b.const("lo", lo)], "sat_lo"), b.const("hi", hi)], "sat_hi")


def qonnx_model(model):
    """The hgq2 quantized model as QONNX (see the module docstring)."""
    b = _Builder()
    h = "x"
    for layer in _chain(model):
        cls = type(layer).__name__
        if cls == "Dense":
            raise UnsupportedError(f"{layer.name}: a float Dense in the quantized model")
        if cls == "QDense":
            if layer.enable_iq:
                h = _datalane_quant(b, h, layer.iq.quantizer, int(layer.kernel.shape[0]))
            if getattr(layer, "enable_oq", False):
                raise UnsupportedError(f"{layer.name}: output quantizers are not exported")
            h = b.node(
                "MatMul", [h, _tensor_quant(b, f"{layer.name}_w", np.asarray(layer.qkernel, np.float64))], "matmul"
            )
            if layer.use_bias:
                h = b.node("Add", [h, _tensor_quant(b, f"{layer.name}_b", np.asarray(layer.qbias, np.float64))], "add")
        h = _activation(b, h, layer)
    return b.model("x", h, int(model.input_shape[1]), int(model.output_shape[1]), qonnx=True)


def export_run(run_dir: str | Path, out: str | Path) -> dict[str, Any]:
    """Write `float.onnx` and `model.qonnx.onnx` of a training run into `out` (atomic) and check them."""
    import onnx

    run_dir, out = Path(run_dir), Path(out)
    card, meta, model_file = read_run(run_dir)
    twin = RunDir(run_dir).float_model
    if not twin.exists():
        raise SchemaError(f"{run_dir}: no float.keras (the float twin)", "export a run made by `trigger-ml train`")
    x = extreme_inputs(input_grid(card, meta), input_shape(card, meta), n_random=N_CHECK, seed=3)
    summary: dict[str, Any] = {"run": str(run_dir), "inputs": f"{len(x)} fuzzed words of the input format"}
    fmodel, qmodel = load_model(twin), QuantizedModel.load(model_file)
    f_onnx, q_onnx = float_onnx(fmodel), qonnx_model(qmodel.model)

    y_k = np.asarray(fmodel.predict(x.astype(np.float32), batch_size=8192, verbose=0), np.float64)
    y_o = OrtSession(f_onnx).predict(x)
    err = np.abs(y_o - y_k) / (1 + np.abs(y_k))
    summary["float"] = {
        "file": "float.onnx",
        "reference": "Keras float twin vs onnxruntime",
        "max_error": float(err.max()),
        "tolerance": FLOAT_TOL,
        "ok": bool(err.max() <= FLOAT_TOL),
    }
    y_q = qmodel.predict(x)
    y_x = QonnxExecutor(q_onnx).predict(x)
    bad = int(np.any(y_q != y_x, axis=1).sum())
    summary["qonnx"] = {
        "file": "model.qonnx.onnx",
        "reference": "quantized Keras (float64) vs qonnx execute_onnx",
        "compared": len(x),
        "mismatched": bad,
        "ok": bad == 0,
    }
    if not summary["float"]["ok"]:
        raise MismatchError(
            f"float ONNX differs from the float twin by {err.max():.3g} (> {FLOAT_TOL})",
            "report it: an export rule is wrong",
        )
    if bad:
        i = int(np.flatnonzero(np.any(y_q != y_x, axis=1))[0])
        raise MismatchError(
            f"QONNX differs from the quantized model on {bad}/{len(x)} inputs; first: expected "
            f"{y_q[i].tolist()} got {y_x[i].tolist()}",
            "report it: an export rule is wrong",
        )
    with atomic_dir(out, kind=ONNX_EXPORT) as tmp:
        onnx.save(f_onnx, tmp / summary["float"]["file"])
        onnx.save(q_onnx, tmp / summary["qonnx"]["file"])
        (tmp / "export.json").write_text(json.dumps(summary, indent=1))
    log.info("float ONNX within %.2g of Keras; QONNX exact on %d inputs", err.max(), len(x))
    return summary
