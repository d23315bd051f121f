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
import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from trigger_ml.compile import manifest
from trigger_ml.compile.cache import file_sha256
from trigger_ml.compile.emulator import CSim, Interface, build_library
from trigger_ml.compile.plugin_host import cmssw_level
from trigger_ml.compile.rtl import SoftwareModel, build_rtl_sim
from trigger_ml.errors import SchemaError, ToolError
from trigger_ml.fixed import Fixed
from trigger_ml.interop.reference import load_levels as load_foreign_levels
from trigger_ml.layout import FirmwareDir
from trigger_ml.train.golden import QuantizedModel, float64_copy

__all__ = [
    "cmssw",
    "Level",
    "QuantizedModel",
    "csim",
    "float64_copy",
    "foreign_reference",
    "golden",
    "rtl_sim",
    "software_model",
]
log = logging.getLogger(__name__)


class Level(Protocol):
    def predict(self, x: np.ndarray) -> np.ndarray: ...


def _rel(fw: FirmwareDir, p: Path) -> str:
    return p.relative_to(fw.root).as_posix()


def golden(fw_dir: str | Path) -> QuantizedModel:
    """The quantized Keras model a firmware directory was compiled from (checked against the manifest)."""
    fw = FirmwareDir(fw_dir)
    manifest.check(fw.root, [_rel(fw, fw.model)])
    return QuantizedModel.load(fw.model)


def csim(fw_dir: str | Path, layout: str = "user", rebuild: bool = False) -> CSim:
    """The C-simulation level of a compiled model directory: `csim(fw).predict(x)` runs the emulator
    library (hls4ml's C simulation) on model inputs `x` and returns its outputs, one row per event.
    For an imported model, x may be in the source's own layout (e.g. NCHW: `layout="user"`, the
    default, transposes inputs of the user's shape); `layout="model"` takes channels-last only.

    The library is loaded only when its bytes match the manifest and its own sizes match the
    manifest's interface. When the sources under `hls/` (or the emulator's) differ from the manifest,
    this is refused (`manifest.check_sources`), unless `rebuild`: then the library is rebuilt from
    them (said in the log: that code is compiled and run), so what is checked is the project as it
    now stands."""
    fw = FirmwareDir(fw_dir)
    m = manifest.read(fw.root)
    iface = Interface.from_json(m["interface"]["emulator"])
    if manifest.check_sources(fw.root, m, rebuild):
        lib, _ = build_library(fw.hls, fw.emulator)
        return _with_layout(fw, CSim(lib, iface, file_sha256(lib)), layout)
    lib_rel = _rel(fw, fw.emulator_lib)
    if lib_rel not in m["outputs_sha256"]:
        raise ToolError(
            f"{fw.manifest} records no sha256 for {lib_rel} (compiled by an older trigger-ml)",
            "compile the model again",
        )
    if not fw.emulator_lib.exists():
        raise SchemaError(f"{fw.emulator_lib}: missing", f"rebuild it with `make -C {fw.emulator}` or compile again")
    return _with_layout(fw, CSim(fw.emulator_lib, iface, m["outputs_sha256"][lib_rel]), layout)


def _with_layout(fw: FirmwareDir, level: CSim, layout: str):
    if layout != "user" or not fw.foreign.info.exists():
        return level
    info = json.loads(fw.foreign.info.read_text())
    lay = info.get("input")
    return _UserInput(level, lay) if lay and (lay.get("perm") or lay.get("format")) else level


def software_model(fw_dir: str | Path) -> SoftwareModel:
    """da4ml's software model of a compiled model directory (`predict(x)`, bit-exact with the RTL)."""
    fw = FirmwareDir(fw_dir)
    m = manifest.read(fw.root)
    if not m["rtl"]["written"]:
        raise SchemaError(f"{fw.root}: no RTL was compiled ({m['rtl'].get('reason')})")
    manifest.check(fw.root, [_rel(fw, fw.comb)], m)
    return SoftwareModel.load(fw.rtl)


def rtl_sim(fw_dir: str | Path, comb=None):
    """The RTL-simulation level: Verilator build of `rtl/` (its files checked against the manifest;
    the build cached by their hash); `comb` is the design's logic when the caller has loaded it
    already (else read from `rtl/`)."""
    fw = FirmwareDir(fw_dir)
    m = manifest.read(fw.root)
    manifest.check(fw.root, manifest.recorded_under(fw.root, "rtl/", m), m)
    comb = comb if comb is not None else software_model(fw_dir).comb
    sim, seconds, hit = build_rtl_sim(fw.rtl, comb)
    sim.build_seconds, sim.cached = seconds, hit
    return sim


def foreign_reference(fw_dir: str | Path):
    """(levels, info) of an imported model's own references (`reference/foreign/`, checked against
    the manifest): levels as (name, level, check) with check "exact" or "fidelity"; or None."""
    fw = FirmwareDir(fw_dir)
    folder = fw.foreign
    if not folder.info.exists():
        return None
    manifest.check(fw.root, manifest.recorded_under(fw.root, _rel(fw, folder.root) + "/"))
    return load_foreign_levels(folder)


class _UserInput:
    """`csim(fw).predict(x)` of an imported model with x as the source took it: in the user's own
    layout (e.g. NCHW) and anywhere on the real line, quantized by the source's input quantizer
    (its rounding and overflow, e.g. HGQ's RND) before the firmware, whose inputs are its words."""

    def __init__(self, level: CSim, layout: dict) -> None:
        self.level, self.layout = level, layout
        self.iface = level.iface
        self.quant = Fixed.parse(layout["format"]) if layout.get("format") else None

    def __getattr__(self, name: str):
        return getattr(self.level, name)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        perm, user = self.layout.get("perm"), tuple(self.layout.get("user_shape", ()))
        if perm and x.shape[1:] == user:
            x = np.transpose(x, (0, *[p + 1 for p in perm]))
        if self.quant is not None:
            x = self.quant.quantize(x)
        return self.level.predict(x)


def cmssw(fw_dir: str | Path, mode: str = "local", rebuild: bool = False):
    """The `cmssw` level: the compiled model's CMSSW plugin (`emulator/<model>.so`) loaded by a C++ host
    the way hls4mlEmulator::ModelLoader loads it (`mode` local or global dlopen), checked by its hash
    before it runs; None when the directory has no plugin (io_stream or multi-array models). Changed
    sources: refused, or rebuilt with `rebuild` (as `csim`)."""
    m = manifest.read(fw_dir)
    if not m.get("plugin", {}).get("written", False):
        return None
    return cmssw_level(fw_dir, mode, rebuild)
