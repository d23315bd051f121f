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

import os
import subprocess
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from trigger_ml.compile import manifest
from trigger_ml.compile.cache import cache_root, digest, file_sha256
from trigger_ml.compile.emulator import Interface, _run, _tool, compiler_version
from trigger_ml.compile.plugin import INTERFACE_HEADER, library_name
from trigger_ml.errors import MismatchError, SchemaError, ToolError

DRIVER = "tml_plugin_driver"
MODES = ("local", "global")


def build_driver() -> Path:
    """The driver executable (cached by the hash of its source, the interface header and g++)."""
    tpl = resources.files("trigger_ml.compile") / "templates" / "plugin"
    src, header = tpl.joinpath(f"{DRIVER}.cpp").read_bytes(), tpl.joinpath(INTERFACE_HEADER).read_bytes()
    cxx = _tool("CXX", "g++")
    flags = ("-O1", "-std=c++17")
    exe = cache_root() / "driver" / digest(compiler_version(cxx), " ".join(flags), src, header)[:32] / DRIVER
    if not exe.exists():
        exe.parent.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="build-", dir=exe.parent.parent) as tmp:
            t = Path(tmp)
            (t / "hls4ml").mkdir()
            (t / INTERFACE_HEADER).write_bytes(header)
            (t / f"{DRIVER}.cpp").write_bytes(src)
            _run([cxx, *flags, f"-I{t}", str(t / f"{DRIVER}.cpp"), "-o", str(t / DRIVER), "-ldl"],
                 "building the plugin driver")
            try:
                os.replace(t, exe.parent)
            except OSError:
                pass  # built by a parallel process meanwhile
    return exe


def parse_info(text: str) -> dict[str, str]:
    """`tml_plugin_info()`'s `key=value key=value ...` as a dict."""
    return dict(item.split("=", 1) for item in text.split() if "=" in item)


def run_plugins(runs: Sequence[tuple[str | Path, np.ndarray]], mode: str = "local"
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
    with tempfile.TemporaryDirectory(prefix="plugins-") as tmp:
        args = []
        for i, ((lib, _), raw) in enumerate(zip(runs, raws)):
            raw.tofile(Path(tmp) / f"in{i}.i64")
            args += [str(Path(lib).resolve()), str(Path(tmp) / f"in{i}.i64"), str(Path(tmp) / f"out{i}.i64")]
        r = subprocess.run([str(build_driver()), mode, str(events), *args], capture_output=True, text=True,
                           check=False)
        if r.returncode:
            raise ToolError(f"{DRIVER} failed: {r.stderr.strip()[-2000:]}")
        infos = [parse_info(line.split("\t", 1)[1]) for line in r.stdout.splitlines() if "\t" in line]
        outs = [np.fromfile(Path(tmp) / f"out{i}.i64", dtype=np.int64).reshape(events, int(info["n_outputs"]))
                for i, info in enumerate(infos)]
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
        self.rebuilt = False  # set by cmssw_level: other bytes than the library compile recorded
        _, (self.info,) = run_plugins([(self.lib, np.zeros((0, iface.n_in), dtype=np.int64))], mode)

    def predict_raw(self, raw: np.ndarray) -> np.ndarray:
        (out,), _ = run_plugins([(self.lib, raw)], self.mode)
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.iface.from_raw(self.predict_raw(self.iface.to_raw(x)))


def plugin_path(fw_dir: str | Path) -> Path:
    """`emulator/<model>.so` of a compiled model directory."""
    m = manifest.read(fw_dir)
    return Path(fw_dir) / "emulator" / f"{library_name(m['model'])}.so"


def cmssw_level(fw_dir: str | Path, mode: str = "local") -> PluginLevel:
    """The plugin of a compiled model directory, after checking it is that model's: the library's
    own `tml_plugin_info()` must name the manifest's model sha256 (another model's library renamed
    is a mismatch, exit 1). A library whose bytes differ from the compiled one (manifest
    `plugin.sha256`) but names the right model was rebuilt (`make -f plugin.mk`): `rebuilt` says so."""
    fw_dir = Path(fw_dir)
    m = manifest.read(fw_dir)
    lib = plugin_path(fw_dir)
    if not lib.exists():
        raise SchemaError(f"{lib}: missing", f"build it with `make -C {lib.parent} -f plugin.mk` or compile again")
    level = PluginLevel(lib, Interface(**m["interface"]["emulator"]), mode)
    got = level.info.get("model_sha256")
    if got != m["model_sha256"]:
        raise MismatchError(
            f"{lib} is the plugin of model {level.info.get('model', '?')!r} (model sha256 {got}), not of this "
            f"directory's model {m['model']!r} (sha256 {m['model_sha256']})",
            f"rebuild it: `make -C {lib.parent} -f plugin.mk clean all`, or compile again")
    want = m.get("plugin", {}).get("sha256")
    level.rebuilt = want is not None and file_sha256(lib) != want
    return level
