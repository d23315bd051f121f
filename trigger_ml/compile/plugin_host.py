"""Running CMSSW plugins as CMSSW does, and the `cmssw` level.

`tml_plugin_driver` (templates/plugin/tml_plugin_driver.cpp, built once per machine and cached) is
a small C++ host doing what `hls4mlEmulator::ModelLoader` and a CMSSW producer do: dlopen the
library (RTLD_LAZY with RTLD_LOCAL, ModelLoader's mode, or RTLD_GLOBAL), dlsym and call
`create_model`, then per event `prepare_input`, `predict`, `read_result`, and `destroy_model`.
It runs several plugins in one process with their events interleaved, so plugins that shared a
symbol would disturb each other. Raw integers cross in and out (`prepare_input(const int64_t *)`).

`PluginLevel.predict(x)` is the level contract (raw outputs as float64, one row per event), and
`cmssw_level(fw_dir)` checks that the library is the compiled model's (its `tml_plugin_info()`
names the model file's sha256) before any event runs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from trigger_ml.atomic import scratch_dir
from trigger_ml.compile import cache, manifest
from trigger_ml.compile.cache import digest
from trigger_ml.compile.emulator import Interface, _run
from trigger_ml.compile.plugin import INTERFACE_HEADER, compile_plugin, library_name
from trigger_ml.errors import MismatchError, SchemaError, ToolError
from trigger_ml.layout import FirmwareDir
from trigger_ml.tools import compiler, compiler_version

DRIVER = "tml_plugin_driver"
MODES = ("local", "global")


def build_driver() -> Path:
    """The driver executable (cached by the hash of its source, the interface header and g++)."""
    tpl = resources.files("trigger_ml.compile") / "templates" / "plugin"
    src, header = tpl.joinpath(f"{DRIVER}.cpp").read_bytes(), tpl.joinpath(INTERFACE_HEADER).read_bytes()
    cxx = compiler("CXX", "g++")
    flags = ("-O1", "-std=c++17")
    exe = cache.root().driver(digest(compiler_version(cxx), " ".join(flags), src, header)[:32])
    if cache.get(exe) is None:
        with scratch_dir(exe.parent) as t:
            (t / "hls4ml").mkdir()
            (t / INTERFACE_HEADER).write_bytes(header)
            (t / f"{DRIVER}.cpp").write_bytes(src)
            _run(
                [cxx, *flags, f"-I{t}", str(t / f"{DRIVER}.cpp"), "-o", str(t / DRIVER), "-ldl"],
                "building the plugin driver",
            )
            cache.put(t / DRIVER, exe)
            exe.chmod(0o755)
    return exe


def parse_info(text: str) -> dict[str, str]:
    """`tml_plugin_info()`'s `key=value key=value ...` as a dict."""
    return dict(item.split("=", 1) for item in text.split() if "=" in item)


def run_plugins(
    runs: Sequence[tuple[str | Path, np.ndarray]], mode: str = "local"
) -> tuple[list[np.ndarray], list[dict[str, str]]]:
    """Run every (library, raw inputs) pair in one driver process, events interleaved; returns
    each library's raw outputs (int64, one row per event) and its `tml_plugin_info()`."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    raws = [np.asarray(raw, dtype=np.int64) for _, raw in runs]
    raws = [np.ascontiguousarray(r.reshape(len(r), int(np.prod(r.shape[1:], dtype=np.int64)))) for r in raws]
    n = {len(r) for r in raws}
    if len(n) != 1:
        raise ValueError(f"every plugin needs the same number of events, got {sorted(n)}")
    events = n.pop()
    with scratch_dir() as tmp:
        args = []
        for i, ((lib, _), raw) in enumerate(zip(runs, raws)):
            raw.tofile(Path(tmp) / f"in{i}.i64")
            args += [str(Path(lib).resolve()), str(Path(tmp) / f"in{i}.i64"), str(Path(tmp) / f"out{i}.i64")]
        r = subprocess.run([str(build_driver()), mode, str(events), *args], capture_output=True, text=True, check=False)
        if r.returncode:
            raise ToolError(f"{DRIVER} failed: {r.stderr.strip()[-2000:]}")
        infos = [parse_info(line.split("\t", 1)[1]) for line in r.stdout.splitlines() if "\t" in line]
        outs = [
            np.fromfile(Path(tmp) / f"out{i}.i64", dtype=np.int64).reshape(events, int(info["n_outputs"]))
            for i, info in enumerate(infos)
        ]
    for (lib, _), raw, info in zip(runs, raws, infos):
        if events and raw.shape[1] != int(info["n_inputs"]):  # no events: the info query
            raise ValueError(f"{lib} takes {info['n_inputs']} inputs per event, got {raw.shape[1]}")
    return outs, infos


class PluginLevel:
    """The `cmssw` level: `predict(x)` through `<model>.so`, loaded and run as CMSSW does."""

    def __init__(self, lib: str | Path, iface: Interface, mode: str = "local") -> None:
        self.lib = Path(lib)
        self.iface = iface
        self.mode = mode
        self.rebuilt = False  # set by cmssw_level: rebuilt from edited sources
        _, (self.info,) = run_plugins([(self.lib, np.zeros((0, iface.n_in), dtype=np.int64))], mode)

    def predict_raw(self, raw: np.ndarray) -> np.ndarray:
        (out,), _ = run_plugins([(self.lib, raw)], self.mode)
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.iface.from_raw(self.predict_raw(self.iface.to_raw(x)))


def plugin_path(fw_dir: str | Path) -> Path:
    """`emulator/<model>.so` of a compiled model directory."""
    m = manifest.read(fw_dir)
    return FirmwareDir(fw_dir).plugin(library_name(m["model"]))


def cmssw_level(fw_dir: str | Path, mode: str = "local", rebuild: bool = False) -> PluginLevel:
    """The plugin of a compiled model directory, loaded only after its bytes match the sha256 the
    manifest records (as the C simulation's library: a replaced or relinked library is one error
    and never runs). When the HLS or plugin sources differ from the manifest, this is refused
    (`manifest.check_sources`), unless `rebuild`: then the plugin is rebuilt from them instead
    (`rebuilt`). Its own `tml_plugin_info()` must then name the manifest's model sha256 (a mismatch,
    exit 1, if another model's sources were put in its place) and the manifest's sizes."""
    fw = FirmwareDir(fw_dir)
    m = manifest.read(fw.root)
    lib = plugin_path(fw.root)
    rel = lib.relative_to(fw.root).as_posix()
    iface = Interface.from_json(m["interface"]["emulator"])
    rebuilt = bool(manifest.check_sources(fw.root, m, rebuild))
    if rebuilt:
        lib = compile_plugin(fw.hls, fw.emulator, library_name(m["model"]))
    elif rel not in m["outputs_sha256"]:
        raise SchemaError(f"{fw.root}: compiled without a CMSSW plugin", "compile again with this trigger-ml")
    else:
        manifest.check(fw.root, [rel], m)
    level = PluginLevel(lib, iface, mode)
    level.rebuilt = rebuilt
    got = level.info.get("model_sha256")
    if got != m["model_sha256"]:
        raise MismatchError(
            f"{lib} is the plugin of model {level.info.get('model', '?')!r} (model sha256 {got}), not of this "
            f"directory's model {m['model']!r} (sha256 {m['model_sha256']})",
            "compile the model again",
        )
    sizes = (level.info.get("n_inputs"), level.info.get("n_outputs"))
    if sizes != (str(iface.n_in), str(iface.n_out)):
        raise SchemaError(
            f"{lib} takes {sizes[0]} inputs and writes {sizes[1]} outputs per event; {fw.manifest} says "
            f"{iface.n_in} and {iface.n_out} (interface.emulator): the manifest was edited",
            "compile the model again (trigger-ml compile <run> --out <dir>)",
        )
    return level
