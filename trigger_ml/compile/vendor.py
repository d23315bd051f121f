"""Vendor HLS reports of a firmware's `hls/` (Vitis/Vivado HLS C synthesis, Vivado synthesis).

They count only when `compile --vendor` ran the vendor tool and recorded the report files, with
their sha256, in the manifest (`manifest.json` `vendor`: the tool and the files; the hashes in
`outputs_sha256`). A report file the manifest does not record (hand-written, copied in, left by
another run) is ignored with one note; a recorded one that changed since is one error; a recorded
one that hls4ml's reader cannot read (partial, corrupt) is one error naming the file. The reader
runs on a private copy holding only the recorded files and the project's `project.tcl`, so no
unrecorded file reaches it.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from trigger_ml.atomic import atomic_file
from trigger_ml.compile import manifest
from trigger_ml.compile.cache import file_sha256, tree_hashes
from trigger_ml.errors import SchemaError
from trigger_ml.layout import FirmwareDir

# what hls4ml's `parse_vivado_report` reads for the figures, relative to the firmware directory
REPORTS = ("hls/*_prj/*.app", "hls/*_prj/*/syn/report/*_csynth.xml", "hls/vivado_synth.rpt")
PROJECT = "hls/project.tcl"  # written by compile (hls4ml), recorded with the sources
SUMMARY = "hls/synthesis_report.json"  # hls4ml's summary of the vendor run (`FirmwareDir.vendor_report`)


def present(root: Path) -> list[str]:
    """The vendor report files under the firmware's `hls/` (regular files, relative paths)."""
    root = Path(root)
    found = {p for pattern in REPORTS for p in root.glob(pattern) if p.is_file() and not p.is_symlink()}
    return sorted(p.relative_to(root).as_posix() for p in found)


def record(root: Path, tool: str) -> dict[str, Any]:
    """After the vendor tool ran in `root` (`compile --vendor`): record its report files in the
    manifest, and the sha256 of every file it added under `hls/` (the vendor project: compile wrote
    it, through the tool), the manifest rewritten atomically; returns the new manifest."""
    fw = FirmwareDir(root)
    m = manifest.read(fw.root)
    files = present(fw.root)
    if fw.vendor_report.is_file():  # hls4ml's summary of the run, kept beside the reports
        files.append(SUMMARY)
    added = {f"hls/{rel}": sha for rel, sha in tree_hashes(fw.hls).items() if f"hls/{rel}" not in m["outputs_sha256"]}
    m["vendor"] = {"tool": tool, "reports": files}
    m["outputs_sha256"] = {**m["outputs_sha256"], **added, **{rel: file_sha256(fw.root / rel) for rel in files}}
    with atomic_file(fw.manifest) as tmp:
        tmp.write_text(json.dumps(m, indent=2, sort_keys=False) + "\n")
    return m


def recorded(m: dict[str, Any]) -> list[str]:
    """The report files the manifest records as written by the vendor tool (a bad entry is an error)."""
    entry = m.get("vendor")
    if entry is None:
        return []
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("reports"), list)
        or not all(isinstance(r, str) for r in entry["reports"])
    ):
        raise SchemaError(
            "manifest.json: 'vendor' must be {tool, reports: [file, ...]}",
            "compile the model again (trigger-ml compile <run> --out <dir> --vendor)",
        )
    return list(entry["reports"])


def read(root: Path) -> tuple[dict[str, Any], str | None]:
    """hls4ml's parse of the recorded vendor reports ({} when none is recorded) and a note naming
    the report files that were ignored because the manifest does not record them (or None)."""
    root = Path(root)
    m = manifest.read(root)
    rec, found = recorded(m), present(root)
    ignored = [rel for rel in found if rel not in rec]
    note = (
        f"vendor report ignored, not recorded in manifest.json: {', '.join(ignored)} "
        "(only `trigger-ml compile --vendor`, which runs the vendor tool, records its reports)"
        if ignored
        else None
    )
    reports = [rel for rel in rec if rel in found]  # found under hls/ by the patterns: inside the folder
    lost = [rel for rel in rec if rel not in found and rel != SUMMARY]
    if not any(rel.endswith("_csynth.xml") for rel in reports + lost):
        return {}, note
    manifest.check(root, [PROJECT, *reports, *lost], m)  # recorded, there, and unchanged since the tool wrote them
    return _parse(root, reports), note


def _parse(root: Path, reports: list[str]) -> dict[str, Any]:
    """hls4ml's `parse_vivado_report` on a private copy of project.tcl and the recorded reports."""
    import hls4ml

    csynth = next(rel for rel in reports if rel.endswith("_csynth.xml"))
    with tempfile.TemporaryDirectory(prefix="tml-vendor-") as tmp:
        for rel in (PROJECT, *reports):
            dest = Path(tmp) / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, dest)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                rep = hls4ml.report.parse_vivado_report(str(Path(tmp) / "hls"))
        except Exception as exc:  # hls4ml's reader raises IndexError, AttributeError, ParseError... on a bad report
            raise SchemaError(
                f"{root / csynth}: a partial or corrupt vendor report ({type(exc).__name__}: {exc})",
                "run the vendor synthesis again (trigger-ml compile <run> --out <dir> --vendor)",
            ) from exc
    if not isinstance(rep, dict) or not isinstance(rep.get("CSynthesisReport"), dict):
        raise SchemaError(
            f"{root / csynth}: a partial vendor report (hls4ml's reader found no C synthesis figures in it)",
            "run the vendor synthesis again (trigger-ml compile <run> --out <dir> --vendor)",
        )
    return rep
