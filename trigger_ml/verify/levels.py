"""One `predict(x) -> np.ndarray` per level, raw outputs, one row per event.

- `QuantizedModel`: the quantized Keras model, evaluated in float64. hgq2 computes in float32,
  which rounds any pre-quantizer value wider than 24 significant bits; the float64 copy is exact
  for every value up to 53 bits, so it is the golden model (docs/research, gotcha G1).
- `CSim`: hls4ml's C simulation, through the compiled emulator library.
- `SoftwareModel`: da4ml's bit-exact interpreter of the traced logic.
- `foreign_reference`: an imported model's own reference (qonnx's executor or onnxruntime).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np

from trigger_ml.compile import manifest
from trigger_ml.compile.emulator import LIB, CSim, Interface
from trigger_ml.compile.rtl import SoftwareModel
from trigger_ml.errors import SchemaError


class Level(Protocol):
    def predict(self, x: np.ndarray) -> np.ndarray: ...


def float64_copy(model):
    """The same model with every layer and quantizer computing in float64, same weights."""
    import keras

    old_policy, old_floatx = keras.config.dtype_policy().name, keras.config.floatx()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")  # hgq2 quantizers take the global policy when built
    try:
        cfg = json.loads(json.dumps(model.get_config()).replace('"float32"', '"float64"'))
        m64 = keras.Model.from_config(cfg)
        m64.set_weights(model.get_weights())
    finally:
        keras.config.set_dtype_policy(old_policy)
        keras.config.set_floatx(old_floatx)
    return m64


class QuantizedModel:
    """The quantized Keras model (float64, exact)."""

    def __init__(self, model) -> None:
        self.model = model
        self._m64 = float64_copy(model)

    @classmethod
    def load(cls, path: str | Path) -> QuantizedModel:
        from trigger_ml.train.fit import load_model

        return cls(load_model(path))

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        y = self._m64.predict(x, batch_size=8192, verbose=0)
        return np.asarray(y, dtype=np.float64).reshape(len(x), -1)


def csim(fw_dir: str | Path) -> CSim:
    """The C-simulation level of a compiled model directory."""
    fw_dir = Path(fw_dir)
    m = manifest.read(fw_dir)
    lib = fw_dir / "emulator" / LIB
    if not lib.exists():
        raise SchemaError(f"{lib}: missing", f"rebuild it with `make -C {fw_dir / 'emulator'}` or compile again")
    return CSim(lib, Interface(**m["interface"]["emulator"]))


def software_model(fw_dir: str | Path) -> SoftwareModel:
    """da4ml's software model of a compiled model directory."""
    fw_dir = Path(fw_dir)
    m = manifest.read(fw_dir)
    if not m["rtl"]["written"]:
        raise SchemaError(f"{fw_dir}: no RTL was compiled ({m['rtl'].get('reason')})")
    return SoftwareModel.load(fw_dir / "rtl")


def rtl_sim(fw_dir: str | Path, comb=None):
    """The RTL-simulation level: Verilator build of `rtl/` (cached by the hash of its sources);
    `comb` is the design's logic when the caller has loaded it already (else read from `rtl/`)."""
    from trigger_ml.compile.rtl import build_rtl_sim

    comb = comb if comb is not None else software_model(fw_dir).comb
    sim, seconds, hit = build_rtl_sim(Path(fw_dir) / "rtl", comb)
    sim.build_seconds, sim.cached = seconds, hit
    return sim


def foreign_reference(fw_dir: str | Path):
    """(level, info) of an imported model's own reference (`reference/foreign/`), or None."""
    folder = Path(fw_dir) / "reference" / "foreign"
    if not (folder / "info.json").exists():
        return None
    from trigger_ml.interop.reference import load

    return load(folder)
