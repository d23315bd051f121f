"""manifest.json: what was compiled, with what, into what.

Model hash, tool versions, the effective configuration, per-layer precisions, interface
formats and the sha256 of every output file. Written last, so a directory with a manifest is a
complete compile; it holds no times or paths, so the same model and config give the same bytes.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

from trigger_ml.compile.cache import tree_hashes
from trigger_ml.compile.emulator import compiler_version
from trigger_ml.errors import SchemaError

MANIFEST = "manifest.json"
TOOLS = ("trigger-ml", "hls4ml", "da4ml", "hgq2", "keras", "tensorflow", "numpy")
BUILD_PRODUCTS = ("libtml_emulator.so", "run_vectors", "manifest.json")  # not hashed: rebuilt from hashed sources


def tool_versions() -> dict[str, str]:
    out = {}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    try:
        cxx = compiler_version("g++").splitlines()
        out["g++"] = cxx[0] if cxx else "unknown"
    except FileNotFoundError:
        out["g++"] = "not found"
    return out


def output_hashes(root: Path) -> dict[str, str]:
    return {k: v for k, v in tree_hashes(root).items() if Path(k).name not in BUILD_PRODUCTS}


def write(root: Path, content: dict[str, Any]) -> dict[str, Any]:
    manifest = {**content, "outputs_sha256": output_hashes(root)}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


def read(root: Path) -> dict[str, Any]:
    p = Path(root) / MANIFEST
    if not p.exists():
        raise SchemaError(f"{root}: no {MANIFEST}: not a compiled model", "run `trigger-ml compile <run dir> --out <dir>`")
    return json.loads(p.read_text())
