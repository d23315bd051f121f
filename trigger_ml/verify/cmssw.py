"""The `cmssw` level in verify: the compiled model's CMSSW plugin (emulator/<model>.so), loaded by a
C++ host the way hls4mlEmulator::ModelLoader loads it, against the quantized model like every level.

Hook for the integrator: `exact.load_levels` calls `add_cmssw_level(out, fw_dir)` after the C
simulation; the exact check, the table and the JUnit file then carry `keras == cmssw on <inputs>`
cases with no other change. A library that is another model's (renamed) raises `MismatchError`
(exit 1) before any event runs; a compiled directory without a plugin has no `cmssw` level.
"""

from __future__ import annotations

from pathlib import Path

from trigger_ml.compile.plugin_host import cmssw_level, plugin_path

LEVEL = "cmssw"


def add_cmssw_level(levels: dict, fw_dir: str | Path, mode: str = "local") -> dict:
    """Add the `cmssw` level to `levels` (in place, and returned) when `fw_dir` has a plugin."""
    if plugin_path(fw_dir).exists():
        levels[LEVEL] = cmssw_level(fw_dir, mode)
    return levels
