"""hls4ml: the HLS firmware project of a quantized model, precisions derived from the model.

hls4ml's BitExact pass runs because an hgq2 model's quantizers become FixedPointQuantizer
nodes: it propagates every precision forward from the quantizers and trims unused bits, so the
C simulation equals the quantized model. The default precision is set to `fixed<1,0>` so a
layer the pass did not cover cannot pass unnoticed as a plausible `ap_fixed<16,6>`.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.config import ModelCard
from trigger_ml.errors import UnsupportedError
from trigger_ml.fixed import Fixed
from trigger_ml.layers import KINDS, kind_of_class

log = logging.getLogger(__name__)

STRATEGIES = {"latency": "Latency", "distributed_arithmetic": "distributed_arithmetic", "da": "distributed_arithmetic"}
BACKENDS = ("Vitis", "Vivado")
PROJECT = "myproject"


def check_supported(model) -> None:
    """One clear error for a model without quantizers, or a layer we do not compile."""
    layers = [(layer.name, type(layer).__name__) for layer in model.layers]
    if not any(cls.startswith("Q") for _, cls in layers):
        first = next(((n, c) for n, c in layers if c != "InputLayer"), ("?", "?"))
        raise UnsupportedError(
            f"model {model.name!r} has no quantized layer (first layer {first[0]!r} is a plain {first[1]}): "
            "its precision cannot be derived, and a float model is not bit-exact",
            "build it with hgq2 layers (hgq.layers, or the QKeras-style qkeras.qlayers of hgq2)",
        )
    for name, cls in layers:
        kind = kind_of_class(cls)
        if kind is None or not kind.hls4ml:
            supported = sorted(c for k in KINDS.values() if k.hls4ml for c in k.classes)
            raise UnsupportedError(
                f"layer {name!r} of type {cls} is not supported by the compiler",
                f"supported layers: {', '.join(supported)} (trigger_ml.layers.KINDS)",
            )


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise UnsupportedError(f"unknown strategy {strategy!r}", f"use one of {sorted(STRATEGIES)}")


def hls_config(model, card: ModelCard, strategy: str, backend: str) -> dict[str, Any]:
    import hls4ml

    check_strategy(strategy)
    cfg = hls4ml.utils.config_from_keras_model(
        model, granularity="name", backend=backend, default_precision="fixed<1,0>"
    )
    cfg["Model"]["Strategy"] = STRATEGIES[strategy]
    cfg["Model"]["ReuseFactor"] = 1 if STRATEGIES[strategy] != "Latency" else card.firmware.reuse_factor
    for layer in cfg["LayerName"].values():
        layer.pop("Strategy", None)  # inherit the model's strategy
        layer.pop("ParallelizationFactor", None)  # keep hgq2's fully parallel convolutions
        layer["Trace"] = True  # verify names the first diverging layer from these
        if "Implementation" in layer:  # softmax defaults would override what hgq2's QSoftmax sets
            layer.pop("Implementation", None)
            layer.pop("TableSize", None)
            prec = layer.get("Precision")
            if isinstance(prec, dict):
                for key in [k for k, v in prec.items() if v != "auto"]:
                    prec.pop(key)
    return cfg


def check_tables(hls_model) -> None:
    """Every UnaryLUT's table covers exactly the words of its input (hls4ml indexes it with every bit
    of the input word; a producer narrowed below the table's input format makes it read the wrong
    entries). One error lists every offending layer."""
    bad = []
    for layer in hls_model.get_layers():
        if layer.class_name != "UnaryLUT":
            continue
        width = int(layer.get_input_variable().type.precision.width)
        size = layer.get_attr("table_size")
        if size is None:
            table = layer.get_weights("table") if hasattr(layer, "get_weights") else None
            size = int(np.prod(table.shape)) if table is not None else None
        if size is not None and 2**width != int(size):
            bad.append(f"{layer.name}: input {width} bits, table {size} entries")
    if bad:
        raise UnsupportedError(
            "hls4ml would index lookup tables with words of another width:\n  - " + "\n  - ".join(bad),
            "give each QUnaryFunctionLUT an input format exactly as wide as what its input can reach",
        )


def _normalise(out: Path, random_stamp: str, stamp: str) -> None:
    """Make the written project reproducible: hls4ml's random library stamp becomes ours (the
    compile key), and no file names the temporary directory it was written in."""
    for p in out.rglob("*"):
        if p.is_file() and p.suffix in (".yml", ".tcl", ".sh", ".cpp", ".h", ".json"):
            text = p.read_text()
            new = text.replace(random_stamp, stamp).replace(str(out.resolve()), ".").replace(str(out), ".")
            if new != text:
                p.write_text(new)


def _sorted(obj: Any) -> Any:
    """Dicts with their keys in sorted order, recursively (hls4ml dumps its config in dict order,
    which was seen to differ between two conversions of one model in one process)."""
    if isinstance(obj, dict):
        return {k: _sorted(obj[k]) for k in sorted(obj, key=str)}
    return obj


def convert(model, card: ModelCard, out: Path, strategy: str, backend: str, stamp: str):
    """Convert and write the project (sources only; `emulator` builds the C simulation)."""
    import hls4ml

    check_supported(model)
    if backend not in BACKENDS:
        raise UnsupportedError(f"unknown hls4ml backend {backend!r}", f"use one of {list(BACKENDS)}")
    cfg = hls_config(model, card, strategy, backend)
    what = f"hls4ml cannot convert model {model.name!r} with strategy {strategy}"
    with hls4ml_conversion(what, "see `trigger-ml compile --help` for the supported layers and strategies"):
        hls_model = hls4ml.converters.convert_from_keras_model(
            model,
            output_dir=str(out),
            project_name=PROJECT,
            backend=backend,
            io_type=card.firmware.io_type,
            hls_config=cfg,
            part=card.firmware.part,
            clock_period=card.firmware.clock_ns,
            bit_exact=True,
            write_weights_txt=False,  # weights compiled in: the emulator needs no data files
            write_tar=False,
        )
        check_tables(hls_model)
        write_project(hls_model)
    _normalise(out, hls_model.config.get_config_value("Stamp"), stamp)
    return hls_model


@contextlib.contextmanager
def hls4ml_conversion(what: str, fix: str):
    """Around an hls4ml conversion: its progress prints kept for --verbose, and what hls4ml raises
    on a model it cannot take turned into one UnsupportedError (`what`: type: message; `fix`)."""
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):
            yield
    except (KeyError, AttributeError, NotImplementedError, AssertionError, ValueError, TypeError) as exc:
        raise UnsupportedError(f"{what}: {type(exc).__name__}: {exc}", fix) from exc
    finally:
        log.debug("hls4ml:\n%s", chatter.getvalue())


def write_project(hls_model) -> None:
    """Write the converted project: per-layer outputs in the C simulation (guarded out of synthesis)
    and a reproducible hls4ml_config.yml."""
    hls_model.config.trace_output = True
    hls_model.config.config = _sorted(hls_model.config.config)
    hls_model.write()


def layer_precisions(hls_model) -> list[dict[str, Any]]:
    """Per-layer result, weight, bias and accumulator precisions of a converted model."""
    rows = []
    for layer in hls_model.get_layers():
        out = layer.get_output_variable()
        row: dict[str, Any] = {
            "layer": layer.name,
            "class": layer.class_name,
            "result": str(out.type.precision),
            "shape": [int(s) for s in out.shape],
            "traced": bool(layer.get_attr("trace", False) and layer.get_attr("function_cpp", None)),
        }
        for key in ("weight_t", "bias_t", "accum_t"):
            t = layer.attributes.get(key)
            if t is not None and hasattr(t, "precision"):
                row[key[:-2]] = str(t.precision)
        cost = layer.get_attr("da_kernel_cost")
        if cost is not None:
            row["da_kernel_cost_lut"] = float(cost)
        rows.append(row)
    return rows


def io_formats(hls_model) -> dict[str, Any]:
    """Interface formats: the input and output precisions and shapes."""

    def fmt(var) -> dict[str, Any]:
        p = var.type.precision
        f = Fixed(bool(p.signed), int(p.integer) - int(p.signed), int(p.width) - int(p.integer))
        return {
            "name": var.name,
            "shape": [int(s) for s in var.shape],
            "precision": str(p),
            "format": str(f),
            "width": f.width,
        }

    return {
        "inputs": [fmt(v) for v in hls_model.get_input_variables()],
        "outputs": [fmt(v) for v in hls_model.get_output_variables()],
    }


def hls_tool() -> str | None:
    """The vendor HLS tool on PATH, if any."""
    import shutil

    for tool in ("vitis_hls", "vivado_hls"):
        if shutil.which(tool):
            return tool
    return None
