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

import yaml

from trigger_ml import __version__
from trigger_ml.atomic import atomic_dir
from trigger_ml.compile import cache, emulator, hls, manifest, memory, plugin, rtl, stock, vendor
from trigger_ml.config import ModelCard, load_card
from trigger_ml.errors import SchemaError, TriggerMLError, UnsupportedError
from trigger_ml.fpga import MODEL_VERSION
from trigger_ml.layout import FirmwareDir, RunDir
from trigger_ml.train.fit import load_model
from trigger_ml.train.models import input_grid, input_shape

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """Compile options; None takes the value from the model card."""

    strategy: str | None = None
    backend: str | None = None
    part: str | None = None
    clock_ns: float | None = None
    rtl: bool = True
    vendor: bool = False  # vendor HLS synthesis (vitis_hls/vivado_hls) when on PATH
    use_cache: bool = True
    force: bool = False  # compile even when g++ is estimated to need more memory than available

    def firmware_overrides(self) -> dict[str, Any]:
        keys = ("strategy", "backend", "part", "clock_ns")
        out = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        if out.get("strategy") in hls.STRATEGIES:  # the alias "da"
            out["strategy"] = {"da": "distributed_arithmetic"}.get(out["strategy"], out["strategy"])
        return out


@dataclass
class Result:
    out: Path
    manifest: dict[str, Any]
    cached: bool
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def read_run(run_dir: str | Path) -> tuple[ModelCard, dict[str, Any], Path]:
    """A training run's card, data metadata and model file (one clear error if it is not a run)."""
    run = RunDir(run_dir)
    for p in (run.model if not run.stock.exists() else run.stock, run.card):
        if not p.exists():
            raise SchemaError(
                f"{run.root}: missing {p.name}: not a training run directory",
                "train the model first: `trigger-ml train models/<model>.yaml --out <run dir>`",
            )
    card = load_card(run.card)
    data_meta = json.loads(run.metrics.read_text()).get("data", {}) if run.metrics.exists() else {}
    model = run.stock if run.stock.exists() and not run.model.exists() else run.model
    return card, {k: v for k, v in data_meta.items() if v is not None}, model


def _compile_sources() -> bytes:
    """The compile stage's own code (this package, its C++ templates and the timing model): a change to
    it, even within one version of trigger-ml (a development install), must not be served from the cache."""
    pkg = Path(__file__).resolve().parent
    files = sorted([*pkg.glob("*.py"), *(pkg.parent / "timing").glob("*.py")])
    files += sorted(p for p in (pkg / "templates").rglob("*") if p.is_file())
    return b"".join(p.relative_to(pkg.parent).as_posix().encode() + p.read_bytes() for p in files)


def compile_key(run: RunDir, card: ModelCard, opts: Options, tools: dict[str, str]) -> str:
    conf = json.dumps(
        {
            "card": card.to_dict(),
            "rtl": opts.rtl,
            "flags": emulator.CXXFLAGS,
            "plugin_flags": [*plugin.CXXFLAGS, *plugin.LDFLAGS],
            "timing_model": MODEL_VERSION,
        },
        sort_keys=True,
    )
    twin = run.float_model
    if not run.model.exists() and run.stock.exists():  # hls4ml's own converter reads the foreign files
        files = sorted(
            p for p in run.foreign.root.iterdir() if p.is_file() and p.name in stock.read_spec(run.stock)["files"]
        )
        model_bytes = run.stock.read_bytes() + b"".join(p.name.encode() + p.read_bytes() for p in files)
    else:
        model_bytes = run.model.read_bytes()
    return cache.digest(
        model_bytes,
        twin.read_bytes() if twin.exists() else b"",
        conf,
        json.dumps(tools, sort_keys=True),
        __version__,
        _compile_sources(),
    )


def compile_run(run_dir: str | Path, out: str | Path, opts: Options = Options()) -> Result:
    """Compile the run in `run_dir` (from `trigger-ml train` or `trigger-ml import`) into the firmware
    directory `out`: the hls4ml project, the C emulator, da4ml's RTL and the manifest.

    The tree is written atomically and cached by the compile key (model file, float twin, card,
    options, tool versions): a re-run on an unchanged model is a copy. `opts` overrides the card's
    firmware section (None keeps the card's value). Raises `TriggerMLError` for bad input."""
    run = RunDir(run_dir)
    card, data_meta, _ = read_run(run.root)
    card = card.with_overrides(firmware=opts.firmware_overrides()) if opts.firmware_overrides() else card
    hls.check_strategy(card.firmware.strategy)
    tools = manifest.tool_versions()
    key = compile_key(run, card, opts, tools)
    out = Path(out)
    t0 = time.perf_counter()
    entry = cache.root().firmware(key)
    if opts.use_cache and FirmwareDir(entry).manifest.exists():
        if cache.tree_ok(entry, FirmwareDir.MARKER):
            with atomic_dir(out, kind=FirmwareDir.OUTPUT) as tmp:
                shutil.copytree(entry, tmp, symlinks=True, dirs_exist_ok=True)
            res = Result(out, manifest.read(out), True, {"total": time.perf_counter() - t0})
            res.notes.append(f"served from the compile cache ({entry}; every file checked against its manifest)")
            return _vendor(res, opts)
        log.warning(
            "compile cache entry %s does not match its manifest (modified or corrupt): discarded, compiling again",
            entry,
        )
        cache.discard(entry)
    with atomic_dir(out, kind=FirmwareDir.OUTPUT) as tmp:
        res = _compile_into(FirmwareDir(tmp), card, data_meta, run, key, tools, opts)
        if opts.use_cache:
            cache.store_tree(tmp, key)
    res.out = out
    res.timings_s["total"] = time.perf_counter() - t0
    return _vendor(res, opts)


def _compile_into(
    fw: FirmwareDir,
    card: ModelCard,
    data_meta: dict[str, Any],
    run: RunDir,
    key: str,
    tools: dict[str, str],
    opts: Options,
) -> Result:
    timings: dict[str, float] = {}
    notes: list[str] = []
    firmware = card.firmware
    spec = stock.read_spec(run.stock) if run.stock.exists() and not run.model.exists() else None

    t = time.perf_counter()
    if spec is None:
        model = load_model(run.model)
        memory.check(memory.from_model(model), card.name, opts.force)  # before hls4ml writes a large project
        model_sha = cache.file_sha256(run.model)
        hls_model = hls.convert(model, card, fw.hls, firmware.strategy, firmware.backend, key[:8])
        shutil.copyfile(run.model, fw.model)  # hls4ml's re-save is not reproducible
    else:  # the fallback: hls4ml's own converter from the foreign file (no hgq2 model, no da4ml)
        model, model_sha = None, cache.file_sha256(run.stock)
        hls_model = stock.convert(spec, run.foreign.root, card, fw.hls, firmware.strategy, firmware.backend, key[:8])
        notes.append(f"{stock.LABEL}: converted from {', '.join(spec['files'])}")
    fw.card.write_text(yaml.safe_dump(card.to_dict(), sort_keys=False))  # the card as compiled
    _keep_reference(run, fw)
    timings["hls_convert"] = time.perf_counter() - t
    precisions = hls.layer_precisions(hls_model)
    formats = hls.io_formats(hls_model)
    iface = emulator.Interface.from_formats(formats)

    # the two C++ builds of the project (the C emulator, the CMSSW plugin: the critical path, minutes
    # each for a large project) run side by side while da4ml traces the model at a lower priority;
    # their peak memory is estimated first: refused above what the machine has (unless forced), and
    # two large builds run one after another (trigger_ml.compile.memory)
    est = memory.estimate(fw.hls)
    memory.check(est, card.name, opts.force)
    side_by_side = memory.parallel(est, memory.available_bytes())
    emulator.write_sources(fw.emulator, iface, card.name, model_sha, __version__)
    src = fw.hls / "firmware"
    mb = sum(p.stat().st_size for p in src.rglob("*") if p.is_file() and "ap_types" not in p.parts) / 1e6
    log.info("g++: the C simulation and the CMSSW plugin of %.1f MB of project sources (a large one takes minutes)", mb)
    if not side_by_side:
        log.info("g++: %s: the emulator and the plugin are built one after another", est.describe())
    with ThreadPoolExecutor(3) as pool:
        rtl_job = pool.submit(_background, _rtl, model, card, iface, fw.rtl, opts, notes, timings)
        t_emu = time.perf_counter()
        emu = pool.submit(emulator.build, fw.hls, fw.emulator)
        emu.add_done_callback(lambda _: timings.__setitem__("emulator_build", time.perf_counter() - t_emu))
        if not side_by_side:
            emu.result()  # never two large g++ at once
        plugin_job = pool.submit(_plugin, fw, card, model_sha, iface, notes, timings)
        lib_cached = emu.result()
        plugin_info = plugin_job.result()
        rtl_info = rtl_job.result()

    content = {
        "model": card.name,
        "model_sha256": model_sha,
        "compile_key": key,
        "tools": tools,
        "config": {
            "firmware": card.to_dict()["firmware"],
            "hls4ml": _plain(hls_model.config.config.get("HLSConfig", {})),
            "emulator_cxxflags": list(emulator.CXXFLAGS),
        },
        "input_shape": list(input_shape(card, data_meta)),
        "input_grid": input_grid(card, data_meta).to_json(),
        "interface": {**formats, "emulator": iface.to_json()},
        "layers": precisions,
        "rtl": rtl_info,
        "plugin": plugin_info,
    }
    if spec is not None:
        content["converter"] = {"name": f"hls4ml {spec['converter']}", "label": stock.LABEL, "files": spec["files"]}
    m = manifest.write(fw.root, content)
    return Result(fw.root, m, False, timings, notes + (["emulator library from the build cache"] if lib_cached else []))


def _plugin(
    fw: FirmwareDir,
    card: ModelCard,
    model_sha: str,
    iface: emulator.Interface,
    notes: list[str],
    timings: dict[str, float],
) -> dict[str, Any]:
    """The CMSSW plugin `emulator/<model>.so` (trigger_ml.compile.plugin), or a note why there is none."""
    t = time.perf_counter()
    try:
        lib = plugin.build_plugin(fw.hls, fw.emulator, plugin.PluginSpec(card.name, model_sha, iface, __version__))
        info: dict[str, Any] = {"written": True, **plugin.manifest_entry(lib)}
    except UnsupportedError as exc:  # io_stream, or not one input and one output array
        notes.append(f"cmssw plugin skipped: {exc.what}")
        info = {"written": False, "reason": exc.what}
    timings["cmssw_plugin"] = time.perf_counter() - t
    return info


def _keep_reference(run: RunDir, fw: FirmwareDir) -> None:
    fw.reference.mkdir()
    for name in RunDir.KEPT:
        src = run.root / name
        if src.is_dir():
            shutil.copytree(src, fw.reference / name)
        elif src.exists():
            shutil.copyfile(src, fw.reference / name)


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


def _rtl(
    model,
    card: ModelCard,
    iface: emulator.Interface,
    out: Path,
    opts: Options,
    notes: list[str],
    timings: dict[str, float],
) -> dict[str, Any]:
    """da4ml's Verilog and software model, or a note saying why there is none."""
    if not opts.rtl:
        notes.append("rtl skipped: --no-rtl")
        return {"written": False, "reason": "--no-rtl"}
    if model is None:  # hls4ml's own converter: there is no hgq2 model to trace
        notes.append("rtl skipped: da4ml takes hgq2 models only (hls4ml converter run)")
        return {"written": False, "reason": "da4ml takes hgq2 models only (hls4ml converter run)"}
    t = time.perf_counter()
    kif = iface.input.kif
    try:
        comb = rtl.trace(model, kif)
        vm = rtl.write_verilog(comb, card, out)
        solver = rtl.solver_for(model)[1]
        info = {
            "written": True,
            "top": "model",
            "input_kif": list(kif),
            "solver": solver,
            "estimate": rtl.estimate(comb, vm),
        }
        if solver.startswith("plain"):
            notes.append(f"rtl: {solver}")
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


def _vendor(res: Result, opts: Options) -> Result:
    if not opts.vendor:
        return res
    tool = hls.hls_tool()
    if tool is None:
        res.notes.append(
            "--vendor skipped: neither vitis_hls nor vivado_hls is on PATH (vendor synthesis is never required)"
        )
        return res
    import hls4ml

    try:
        model = hls4ml.converters.link_existing_project(str(FirmwareDir(res.out).hls))
        report = model.build(csim=False, synth=True, vsynth=True)
    except Exception as exc:  # vendor tool failure: keep the project, say why
        raise TriggerMLError(f"{tool} synthesis failed: {exc}", f"see the logs in {FirmwareDir(res.out).hls}") from exc
    FirmwareDir(res.out).vendor_report.write_text(json.dumps(_plain(report), indent=2))
    res.manifest = vendor.record(res.out, tool)  # the reports count only when recorded (compile/vendor.py)
    res.notes.append(f"{tool} synthesis report kept in {FirmwareDir(res.out).hls} (recorded in the manifest)")
    return res
