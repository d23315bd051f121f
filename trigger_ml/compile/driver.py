"""The compile stage: a run directory (from `trigger-ml train`) -> a firmware directory.

    out/hls/        hls4ml project (Vitis by default), precisions derived from the model
    out/rtl/        da4ml pipelined Verilog and its exact software model (comb.json)
    out/emulator/   C-ABI emulator library of the C simulation, its header, a vector runner
    out/reference/  the float twin and the training metrics and plots (verify's fidelity check
                    and the report use them; the firmware directory is self-contained)
    out/card.yaml, out/manifest.json

The whole tree is written in a temporary directory and renamed into place, and cached by the
compile key (model file, card, options, tool versions): a re-run on an unchanged model is a copy.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from trigger_ml import __version__
from trigger_ml.atomic import atomic_dir
from trigger_ml.compile import cache, emulator, hls, manifest, rtl
from trigger_ml.config import ModelCard, load_card
from trigger_ml.errors import SchemaError, TriggerMLError, UnsupportedError

log = logging.getLogger(__name__)
CARD = "card.yaml"
MODEL = "hls/keras_model.keras"  # the quantized model file, byte for byte
REFERENCE = "reference"
FLOAT_MODEL = "reference/float.keras"  # the float twin, when the run has one
RUN_FILES = ("float.keras", "metrics.json", "plots", "foreign")  # what reference/ keeps of the run
# (foreign/: an imported model's own file and reference outputs, see trigger_ml.interop)


@dataclass(frozen=True)
class Options:
    """Compile options; None takes the value from the model card."""

    strategy: str | None = None
    backend: str | None = None
    part: str | None = None
    clock_ns: float | None = None
    rtl: bool = True
    synth: bool = False
    use_cache: bool = True

    def firmware_overrides(self) -> dict[str, Any]:
        keys = ("strategy", "backend", "part", "clock_ns")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass
class Result:
    out: Path
    manifest: dict[str, Any]
    cached: bool
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def read_run(run_dir: Path) -> tuple[ModelCard, dict[str, Any], Path]:
    """A training run's card, data metadata and model file (one clear error if it is not a run)."""
    run_dir = Path(run_dir)
    model_file, card_file = run_dir / "model.keras", run_dir / "card.yaml"
    for p in (model_file, card_file):
        if not p.exists():
            raise SchemaError(f"{run_dir}: missing {p.name}: not a training run directory",
                              "train the model first: `trigger-ml train models/<model>.yaml --out <run dir>`")
    card = load_card(card_file)
    metrics = run_dir / "metrics.json"
    data_meta = json.loads(metrics.read_text()).get("data", {}) if metrics.exists() else {}
    return card, {k: v for k, v in data_meta.items() if v is not None}, model_file


def input_grid(card: ModelCard, data_meta: dict[str, Any]) -> list[dict[str, int]]:
    """The model's input quantizer grid: (integer, fraction) bits per input, unsigned (an imported
    model's grid, possibly signed, is in its run's metrics.json)."""
    from trigger_ml.train.models import input_formats, input_shape

    if card.input == "tensor":
        return [dict(e) for e in data_meta["input_grid"]]
    shape = input_shape(card, data_meta)
    i_bits, f_bits = input_formats(card, data_meta, shape)
    i_bits, f_bits = np.broadcast_to(i_bits, shape).ravel(), np.broadcast_to(f_bits, shape).ravel()
    if np.all(i_bits == i_bits[0]) and np.all(f_bits == f_bits[0]):
        return [{"inputs": int(np.prod(shape)), "integer": int(i_bits[0]), "frac": int(f_bits[0])}]
    return [{"inputs": 1, "integer": int(i), "frac": int(f)} for i, f in zip(i_bits, f_bits)]


def compile_key(model_file: Path, card: ModelCard, opts: Options, tools: dict[str, str]) -> str:
    from trigger_ml.timing.families import MODEL_VERSION

    conf = json.dumps({"card": card.to_dict(), "rtl": opts.rtl, "flags": emulator.CXXFLAGS,
                       "timing_model": MODEL_VERSION}, sort_keys=True)
    twin = model_file.parent / "float.keras"
    return cache.digest(model_file.read_bytes(), twin.read_bytes() if twin.exists() else b"", conf,
                        json.dumps(tools, sort_keys=True), __version__)


def compile_run(run_dir: str | Path, out: str | Path, opts: Options = Options()) -> Result:
    """Compile a trained run into `out` (atomic; served from the cache when unchanged)."""
    card, data_meta, model_file = read_run(Path(run_dir))
    card = card.with_overrides(firmware=opts.firmware_overrides()) if opts.firmware_overrides() else card
    hls.check_strategy(card.firmware.strategy)
    tools = manifest.tool_versions()
    key = compile_key(model_file, card, opts, tools)
    out = Path(out)
    t0 = time.perf_counter()
    if opts.use_cache and (cache.firmware_entry(key) / manifest.MANIFEST).exists():
        with atomic_dir(out) as tmp:
            shutil.copytree(cache.firmware_entry(key), tmp, symlinks=True, dirs_exist_ok=True)
        res = Result(out, manifest.read(out), True, {"total": time.perf_counter() - t0})
        res.notes.append(f"served from the compile cache ({cache.firmware_entry(key)})")
        return _synth(res, opts)
    with atomic_dir(out) as tmp:
        res = _compile_into(tmp, card, data_meta, model_file, key, tools, opts)
        if opts.use_cache:
            cache.store_tree(tmp, key)
    res.out = out
    res.timings_s["total"] = time.perf_counter() - t0
    return _synth(res, opts)


def _compile_into(tmp: Path, card: ModelCard, data_meta: dict[str, Any], model_file: Path, key: str,
                  tools: dict[str, str], opts: Options) -> Result:
    from trigger_ml.train.fit import load_model

    timings: dict[str, float] = {}
    notes: list[str] = []
    model = load_model(model_file)
    model_sha = cache.file_sha256(model_file)
    fw = card.firmware

    t = time.perf_counter()
    hls_model = hls.convert(model, card, tmp / "hls", fw.strategy, fw.backend, key[:8])
    shutil.copyfile(model_file, tmp / "hls" / "keras_model.keras")  # hls4ml's re-save is not reproducible
    (tmp / CARD).write_text(yaml.safe_dump(card.to_dict(), sort_keys=False))  # the card as compiled
    _keep_reference(model_file.parent, tmp / REFERENCE)
    timings["hls_convert"] = time.perf_counter() - t
    precisions = hls.layer_precisions(hls_model)
    formats = hls.io_formats(hls_model)
    iface = emulator.Interface.from_formats(formats)

    # the C++ build (the critical path) runs while da4ml traces the model at a lower priority
    emulator.write_sources(tmp / "emulator", iface, card.name, model_sha, __version__)
    with ThreadPoolExecutor(2) as pool:
        t_emu = time.perf_counter()
        emu = pool.submit(emulator.build, tmp / "hls", tmp / "emulator")
        emu.add_done_callback(lambda _: timings.__setitem__("emulator_build", time.perf_counter() - t_emu))
        rtl_job = pool.submit(_background, _rtl, model, card, formats, tmp / "rtl", opts, notes, timings)
        lib_cached = emu.result()
        rtl_info = rtl_job.result()

    content = {
        "model": card.name,
        "model_sha256": model_sha,
        "compile_key": key,
        "tools": tools,
        "config": {"firmware": card.to_dict()["firmware"], "hls4ml": _plain(hls_model.config.config.get("HLSConfig", {})),
                   "emulator_cxxflags": list(emulator.CXXFLAGS)},
        "input_grid": input_grid(card, data_meta),
        "interface": {**formats, "emulator": iface.__dict__},
        "layers": precisions,
        "rtl": rtl_info,
    }
    m = manifest.write(tmp, content)
    return Result(tmp, m, False, timings, notes + (["emulator library from the build cache"] if lib_cached else []))


def _keep_reference(run_dir: Path, dest: Path) -> None:
    dest.mkdir()
    for name in RUN_FILES:
        src = run_dir / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        elif src.exists():
            shutil.copyfile(src, dest / name)


def _background(fn, *args):
    """Run fn in this worker thread at a lower CPU priority (Linux threads have their own nice)."""
    import os
    import threading

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass
    try:
        return fn(*args)
    finally:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 0)
        except OSError:
            pass  # an unprivileged thread cannot raise its priority again; it ends with the pool


def _rtl(model, card: ModelCard, formats: dict[str, Any], out: Path, opts: Options, notes: list[str],
         timings: dict[str, float]) -> dict[str, Any]:
    """da4ml's Verilog and software model, or a note saying why there is none."""
    if not opts.rtl:
        notes.append("rtl skipped: --no-rtl")
        return {"written": False, "reason": "--no-rtl"}
    t = time.perf_counter()
    i = formats["inputs"][0]
    kif = (int(i["signed"]), int(i["integer"]) - int(i["signed"]), int(i["width"]) - int(i["integer"]))
    try:
        comb = rtl.trace(model, kif)
        vm = rtl.write_verilog(comb, card, out)
        info = {"written": True, "top": "model", "input_kif": list(kif), "estimate": rtl.estimate(comb, vm)}
    except UnsupportedError as exc:
        shutil.rmtree(out, ignore_errors=True)
        notes.append(f"rtl skipped: {exc.what}")
        info = {"written": False, "reason": exc.what}
    timings["rtl"] = time.perf_counter() - t
    return info


def _plain(obj: Any) -> Any:
    """The hls4ml config as plain JSON (precision objects become strings)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _synth(res: Result, opts: Options) -> Result:
    if not opts.synth:
        return res
    tool = hls.hls_tool()
    if tool is None:
        res.notes.append("--synth skipped: neither vitis_hls nor vivado_hls is on PATH (vendor synthesis is never required)")
        return res
    import hls4ml

    try:
        model = hls4ml.converters.link_existing_project(str(res.out / "hls"))
        report = model.build(csim=False, synth=True, vsynth=True)
    except Exception as exc:  # vendor tool failure: keep the project, say why
        raise TriggerMLError(f"{tool} synthesis failed: {exc}", f"see the logs in {res.out / 'hls'}") from exc
    (res.out / "hls" / "synthesis_report.json").write_text(json.dumps(_plain(report), indent=2))
    res.notes.append(f"{tool} synthesis report kept in {res.out / 'hls'}")
    return res
