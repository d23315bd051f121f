"""The first diverging layer: the C simulation's per-layer outputs against the quantized model's.

The hls4ml project is written with tracing on (`compile/hls.py`): each layer of the C
simulation stores its output when tracing is enabled (code guarded by `__SYNTHESIS__`, so the
synthesised firmware is unchanged), and the emulator library exposes hls4ml's
`allocate_trace_storage` / `collect_trace_output` / `free_trace_storage`. For one failing event
we run the library with tracing on and compare, in graph order, every traced layer with the
same-named layer of the quantized Keras model (float64, exact), the Keras value put onto the
layer's result format from the manifest (hls4ml may fold the next quantizer into a layer's
result). The first layer that differs is named, with expected and got and the formats.

da4ml traces the model into one combinational graph with no layer boundaries, so for a
mismatch of the da4ml software model or the RTL simulation the check names the output index
and, where the C simulation is still exact, says so: the fault is below hls4ml's layers.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.compile import manifest
from trigger_ml.errors import SchemaError
from trigger_ml.fixed import Fixed
from trigger_ml.verify.levels import csim


@dataclass
class LayerDiff:
    layer: str
    cls: str
    result_format: str
    index: int  # first differing element of the layer's output (flattened)
    expected: float
    got: float
    compared_layers: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"first diverging layer {self.layer!r} ({self.cls}, result {self.result_format}): "
            f"element {self.index} expected {self.expected!r} got {self.got!r}"
        )


class _TraceData(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.c_void_p)]


def csim_layer_outputs(fw_dir: Path, x_event: np.ndarray, rebuild: bool = False) -> dict[str, np.ndarray]:
    """Every traced layer's output in the C simulation, for one event (model input values; `rebuild`
    as `levels.csim`)."""
    fw_dir = Path(fw_dir)
    rows = [r for r in manifest.read(fw_dir)["layers"] if r.get("traced")]
    if not rows:
        return {}
    sim = csim(fw_dir, "model", rebuild)
    lib = sim.lib  # the same loaded library: the trace storage is its global state
    lib.allocate_trace_storage.argtypes, lib.allocate_trace_storage.restype = [ctypes.c_size_t], None
    lib.collect_trace_output.argtypes, lib.collect_trace_output.restype = [ctypes.POINTER(_TraceData)], None
    lib.free_trace_storage.argtypes, lib.free_trace_storage.restype = [], None
    sizes = {r["layer"]: int(np.prod(r["shape"])) for r in rows}
    data = (_TraceData * (2 * len(rows)))()
    lib.allocate_trace_storage(ctypes.sizeof(ctypes.c_double))
    try:
        sim.predict(np.asarray(x_event, dtype=np.float64).reshape(1, -1))
        lib.collect_trace_output(data)
        out = {}
        for t in data:
            if not t.name:
                break
            name = t.name.decode()
            if name in sizes and t.data:
                ptr = ctypes.cast(t.data, ctypes.POINTER(ctypes.c_double))
                out[name] = np.ctypeslib.as_array(ptr, shape=(sizes[name],)).copy()
        return out
    finally:
        lib.free_trace_storage()


def keras_layer_outputs(model64, x_event: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """The named layers' outputs of the (float64) quantized Keras model for one event."""
    import keras

    present = [n for n in names if _has_layer(model64, n)]
    if not present:
        return {}
    probe = keras.Model(model64.inputs, [model64.get_layer(n).output for n in present])
    x = np.asarray(x_event, dtype=np.float64).reshape((1, *model64.inputs[0].shape[1:]))
    ys = probe([x], training=False)
    ys = ys if isinstance(ys, (list, tuple)) else [ys]
    return {n: np.asarray(y, dtype=np.float64).ravel() for n, y in zip(present, ys)}


def _has_layer(model, name: str) -> bool:
    try:
        model.get_layer(name)
        return True
    except ValueError:
        return False


def _pairs(model64, rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
    """(hls4ml layer, Keras layer) pairs in graph order. A Keras layer with a fused activation
    is one layer there but two in hls4ml (`dense1` then `dense1_relu`): its output pairs with the
    activation's, and the pre-activation hls4ml layer has no Keras counterpart."""
    names = {r["layer"] for r in rows}
    out = []
    for r in rows:
        name = r["layer"]
        if _has_layer(model64, name):
            act = getattr(getattr(model64.get_layer(name), "activation", None), "__name__", "linear")
            if act != "linear" and f"{name}_{act}" in names:
                continue  # compared at its activation
            out.append((r, name))
            continue
        base, _, act = name.rpartition("_")
        if (
            base
            and _has_layer(model64, base)
            and getattr(getattr(model64.get_layer(base), "activation", None), "__name__", "linear") == act
        ):
            out.append((r, base))
    return out


def first_diverging_layer(fw_dir: Path, model64, x_event: np.ndarray, rebuild: bool = False) -> LayerDiff | None:
    """Walk the layers in graph order; the first whose C-simulation output differs from Keras."""
    rows = [r for r in manifest.read(fw_dir)["layers"] if r.get("traced")]
    pairs = _pairs(model64, rows)
    got = csim_layer_outputs(fw_dir, x_event, rebuild)
    want = keras_layer_outputs(model64, x_event, sorted({k for _, k in pairs}))
    compared = []
    for r, k in pairs:
        name = r["layer"]
        if name not in got or k not in want or got[name].shape != want[k].shape:
            continue
        fmt = _result_format(r["result"])
        expected = fmt.quantize(want[k]) if fmt is not None else want[k]
        compared.append(k)
        bad = np.flatnonzero(expected != got[name])
        if len(bad):
            i = int(bad[0])
            return LayerDiff(
                k,
                r["class"] if k == name else f"{r['class']} of {k}",
                r["result"],
                i,
                float(expected[i]),
                float(got[name][i]),
                compared,
            )
    return None


def _result_format(text: str) -> Fixed | None:
    """The layer's result format (None when hls4ml's type is not a fixed-point spelling)."""
    try:
        return Fixed.parse(text)
    except SchemaError:
        return None


def compared_layers(fw_dir: Path, model64, x_event: np.ndarray) -> list[str]:
    """The Keras layers a trace compares (for tests and the report)."""
    rows = [r for r in manifest.read(fw_dir)["layers"] if r.get("traced")]
    got = csim_layer_outputs(fw_dir, x_event)
    return [k for r, k in _pairs(model64, rows) if r["layer"] in got]
