"""manifest.json: what was compiled, with what, into what.

Model hash, tool versions, the effective configuration, per-layer precisions, interface
formats and the sha256 of every output file (`outputs_sha256`: the sources, the emulator library
and its runner, the RTL, the reference files; all but the manifest itself). Written last, so a
directory with a manifest is a complete compile; it holds no times or paths, so the same model
and config give the same bytes.

`check` compares files with their recorded sha256 before they are used (verify loads nothing
unchecked): a difference is one clear error naming the file. Whoever edits the card's fidelity
or budget thresholds after compile may: card.yaml is not checked.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

from trigger_ml.compile.cache import file_sha256, tree_hashes
from trigger_ml.errors import SchemaError, ToolError
from trigger_ml.layout import FirmwareDir
from trigger_ml.tools import compiler_version

TOOLS = ("trigger-ml", "hls4ml", "da4ml", "hgq2", "keras", "tensorflow", "numpy")
UNCHECKED = ("card.yaml",)  # hashed, but editable after compile (its fidelity and budget thresholds)


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
    return {k: v for k, v in tree_hashes(root).items() if k != FirmwareDir.MARKER}


def write(root: Path, content: dict[str, Any]) -> dict[str, Any]:
    manifest = {**content, "outputs_sha256": output_hashes(root)}
    FirmwareDir(root).manifest.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


def read(root: Path) -> dict[str, Any]:
    p = FirmwareDir(root).manifest
    if not p.exists():
        raise SchemaError(
            f"{root}: no {p.name}: not a compiled model", "run `trigger-ml compile <run dir> --out <dir>`"
        )
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{p}: not a readable manifest ({exc})", "compile the model again") from exc
    if not isinstance(m, dict) or not isinstance(m.get("outputs_sha256"), dict) or "input_shape" not in m:
        raise SchemaError(
            f"{p}: a manifest of another trigger-ml version or not a manifest",
            "compile the model again with this version",
        )
    return m


def changed(root: Path, rels: list[str], m: dict[str, Any] | None = None) -> list[str]:
    """Which of the files `rels` (relative to the firmware directory) differ from, or are missing
    against, the sha256 the manifest records (a file the manifest does not record counts as changed)."""
    recorded = (m or read(root))["outputs_sha256"]
    out = []
    for rel in rels:
        p = Path(root) / rel
        if rel not in recorded or not p.is_file() or file_sha256(p) != recorded[rel]:
            out.append(rel)
    return out


def recorded_under(root: Path, prefix: str, m: dict[str, Any] | None = None) -> list[str]:
    """The files the manifest records under a folder prefix (e.g. "rtl/")."""
    return sorted(k for k in (m or read(root))["outputs_sha256"] if k.startswith(prefix))


def check(root: Path, rels: list[str], m: dict[str, Any] | None = None) -> None:
    """Raise one ToolError naming the first of `rels` that differs from its recorded sha256."""
    bad = changed(root, rels, m)
    if bad:
        raise ToolError(
            f"{Path(root) / bad[0]} does not match the sha256 in {FirmwareDir(root).manifest} "
            f"({len(bad)} file(s) differ): modified or replaced since compile, so it is not used",
            "compile the model again (trigger-ml compile <run> --out <dir>)",
        )
