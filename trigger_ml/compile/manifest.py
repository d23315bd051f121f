"""manifest.json: what was compiled, with what, into what.

Model hash, tool versions, the effective configuration, per-layer precisions, interface
formats and the sha256 of every output file (`outputs_sha256`: the sources, the emulator library
and its runner, the RTL, the reference files; all but the manifest itself). Written last, so a
directory with a manifest is a complete compile; it holds no times or paths, so the same model
and config give the same bytes.

`check` compares files with their recorded sha256 before they are used (verify loads nothing
unchecked): a difference is one clear error naming the file. Whoever edits the card's fidelity
or budget thresholds after compile may: card.yaml is not checked.

A firmware directory (and so its manifest) may come from someone else: `read` validates every field
it passes on (the model name, hashes, shapes and formats) before anything uses it, a symbolic link
leaving the directory is refused before anything reads through it (`check_links`), and
`check_sources` refuses C++ sources that differ from their recorded sha256 (or that compile never
wrote, where the compiler would find them) unless the caller asked to rebuild them. The manifest is
not signed: the hashes catch accidents and edits that leave it alone, not someone who rewrites it too.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from trigger_ml.compile.cache import file_sha256, tree_hashes
from trigger_ml.compile.hls import PROJECT
from trigger_ml.errors import SchemaError, ToolError, TriggerMLError
from trigger_ml.fixed import Fixed
from trigger_ml.layers import NAME
from trigger_ml.layout import FirmwareDir
from trigger_ml.tools import compiler_version

log = logging.getLogger(__name__)

TOOLS = ("trigger-ml", "hls4ml", "da4ml", "hgq2", "keras", "tensorflow", "numpy")
UNCHECKED = ("card.yaml",)  # hashed, but editable after compile (its fidelity and budget thresholds)
SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_VALUES = 1 << 20  # values per event at the emulator's interface (the largest reference model has 81)
MAX_RANK = 8
MAX_LAYERS = 10_000  # rows of the layer table (the trace reads as many outputs)
MAX_MANIFEST = 64 << 20  # bytes (a manifest of a large project is a few MB)
# What verify and export compile: the hls4ml project (hls/firmware/, the bridge in hls/) and the
# emulator's and plugin's sources (emulator/). Built products beside them are checked by hash instead.
SOURCE_DIRS = ("hls/", "emulator/")
BINARIES = (".so", ".o")
BINARY_NAMES = ("emulator/run_vectors",)
# Files a vendor tool run in hls/ or run_vectors leave (reports, logs, vectors): no include reaches them.
DATA_SUFFIXES = (".log", ".jou", ".rpt", ".xml", ".json", ".app", ".tcl", ".str", ".csv", ".txt", ".dat")


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
    _refuse_escape(Path(root), p)
    if not p.is_file() or p.stat().st_size > MAX_MANIFEST:
        raise _bad(p, f"not a regular file of at most {MAX_MANIFEST >> 20} MB")
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise SchemaError(f"{p}: not a readable manifest ({exc})", "compile the model again") from exc
    if not isinstance(m, dict) or not isinstance(m.get("outputs_sha256"), dict) or "input_shape" not in m:
        raise SchemaError(
            f"{p}: a manifest of another trigger-ml version or not a manifest",
            "compile the model again with this version",
        )
    validate(p, m)
    return m


def _bad(p: Path, what: str) -> SchemaError:
    return SchemaError(
        f"{p}: {what}: not a manifest trigger-ml wrote (edited or damaged), so nothing of this directory is used",
        "compile the model again (trigger-ml compile <run> --out <dir>)",
    )


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_VALUES


def _safe_rel(rel: Any) -> bool:
    """A relative path inside the directory, printable, no `..`."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or not rel.isprintable() or "\\" in rel:
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


def validate(p: Path, m: dict[str, Any]) -> None:
    """Check the fields later stages pass to file names, C++ and C (types, ranges, identifiers);
    one SchemaError naming the first bad field."""
    model = m.get("model")
    if not isinstance(model, str) or not NAME.fullmatch(model):
        raise _bad(p, f"model name {str(model)[:80]!r} is not an identifier (letters, digits, '_', at most 64)")
    if not isinstance(m.get("model_sha256"), str) or not SHA256.fullmatch(m["model_sha256"]):
        raise _bad(p, "model_sha256 is not 64 hexadecimal digits")
    for rel, sha in m["outputs_sha256"].items():
        if not _safe_rel(rel) or not isinstance(sha, str) or not SHA256.fullmatch(sha):
            raise _bad(p, f"outputs_sha256 entry {str(rel)[:80]!r} is not a relative path with a sha256")
    shape = m["input_shape"]
    if not isinstance(shape, list) or not 1 <= len(shape) <= MAX_RANK or not all(_count(d) for d in shape):
        raise _bad(p, f"input_shape {str(shape)[:80]} is not a list of 1..{MAX_RANK} positive sizes")
    emu = m.get("interface", {}).get("emulator") if isinstance(m.get("interface"), dict) else None
    if emu is None:
        raise _bad(p, "no interface.emulator")
    if not isinstance(emu, dict) or not _count(emu.get("n_in")) or not _count(emu.get("n_out")):
        raise _bad(p, f"interface.emulator n_in and n_out must be whole numbers 1..{MAX_VALUES:,}")
    if emu["n_in"] != math.prod(shape):
        raise _bad(p, f"interface.emulator n_in {emu['n_in']} is not the size of input_shape {shape}")
    for side in ("input", "output"):
        try:
            Fixed.parse(emu.get(side))
        except SchemaError:
            raise _bad(
                p, f"interface.emulator {side} {str(emu.get(side))[:80]!r} is not a fixed-point format"
            ) from None
    plugin = m.get("plugin", {})
    if not isinstance(plugin, dict) or not isinstance(plugin.get("written", False), bool):
        raise _bad(p, "plugin is not a record of the CMSSW plugin")
    layers = m.get("layers", [])
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS or not all(map(_layer_row, layers)):
        raise _bad(p, f"layers is not a list of at most {MAX_LAYERS:,} rows (layer name, shape, traced)")


def _layer_row(r: Any) -> bool:
    """One row of the manifest's layer table as compile writes it (the trace sizes its reads by it)."""
    if not isinstance(r, dict) or not isinstance(r.get("layer"), str) or not r["layer"].isprintable():
        return False
    shape = r.get("shape")
    return (
        isinstance(shape, list)
        and len(shape) <= MAX_RANK
        and all(_count(d) for d in shape)
        and isinstance(r.get("traced", False), bool)
    )


def changed(root: Path, rels: list[str], m: dict[str, Any] | None = None) -> list[str]:
    """Which of the files `rels` (relative to the firmware directory) differ from, or are missing
    against, the sha256 the manifest records (a file the manifest does not record counts as changed).
    A file reached through a symbolic link that leaves the directory is refused (`LinkError`)
    before it is read."""
    recorded = (m or read(root))["outputs_sha256"]
    out = []
    for rel in rels:
        p = Path(root) / rel
        _refuse_escape(Path(root), p)
        if rel not in recorded or not p.is_file() or file_sha256(p) != recorded[rel]:
            out.append(rel)
    return out


class LinkError(TriggerMLError):
    """A symbolic link in a firmware directory leads outside it (nothing is read through it)."""


def _refuse_escape(root: Path, p: Path) -> None:
    base = root.resolve()
    try:
        target = p.resolve()
    except (OSError, RuntimeError):  # a link loop
        target = None
    if target is None or not target.is_relative_to(base):
        raise LinkError(
            f"{p} is a symbolic link that leads outside {root} (or loops): refused, nothing is read through it",
            "replace the link by the file itself (compile writes no links), or compile the model again",
        )


def check_links(root: Path) -> None:
    """Refuse a firmware directory holding any symbolic link that leads outside it (walked without
    following links; nothing is read)."""
    root = Path(root)
    for here, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            p = Path(here) / name
            if p.is_symlink():
                _refuse_escape(root, p)


def source_changes(root: Path, m: dict[str, Any]) -> list[str]:
    """The C++ sources verify and export would compile that differ from the manifest: recorded files
    under hls/ and emulator/ that changed or are missing, and files there that compile did not write
    (a compiler include finds those first: an `emulator/cmath` shadows <cmath>), except the built
    binaries (checked by hash where they are loaded), a vendor tool's project, reports and logs and
    vector files."""
    root = Path(root)
    recorded = m["outputs_sha256"]

    def source(rel: str) -> bool:
        return rel.startswith(SOURCE_DIRS) and not rel.endswith(BINARIES) and rel not in BINARY_NAMES

    out = changed(root, sorted(k for k in recorded if source(k) and k != "hls/keras_model.keras"), m)
    vendor_dir = f"hls/{PROJECT}_prj/"  # where Vivado/Vitis HLS write their project
    for top in SOURCE_DIRS:
        for p in sorted((root / top).rglob("*")) if (root / top).is_dir() else []:
            rel = p.relative_to(root).as_posix()
            if rel in recorded or p.is_dir() or not source(rel):
                continue
            if rel.startswith(vendor_dir) or p.suffix in DATA_SUFFIXES:
                continue
            out.append(rel)
    return out


def check_sources(root: Path, m: dict[str, Any], rebuild: bool = False) -> list[str]:
    """Before any C++ of a firmware directory is compiled: refuse links leaving it, and sources that
    differ from the manifest (one error naming them) unless `rebuild` (then say that their code is
    compiled and run); returns the changed files."""
    root = Path(root)
    check_links(root)
    edits = source_changes(root, m)
    if not edits:
        return []
    shown = ", ".join(edits[:5]) + (f" and {len(edits) - 5} more" if len(edits) > 5 else "")
    if not rebuild:
        raise ToolError(
            f"{root}: {len(edits)} source file(s) differ from the sha256 in {FirmwareDir(root).manifest} or were "
            f"not written by compile ({shown}): a changed tree is not compiled and run",
            "review the change; to check the tree as it now stands, verify with --rebuild (it compiles that C++ "
            "and runs it); or compile the model again from its run (trigger-ml compile <run> --out <dir>)",
        )
    log.warning(
        "%s: %d source file(s) changed since compile (%s): --rebuild: rebuilt from them, so that C++ is compiled "
        "and run as it now stands",
        root,
        len(edits),
        shown,
    )
    return edits


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
