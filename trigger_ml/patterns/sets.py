"""A pattern set: the input files a board plays, the output files it should capture, and a spec.

    <dir>/inputs_0.txt, inputs_1.txt, ...     the model's inputs on the input links
    <dir>/expected_0.txt, ...                 the bit-exact model's outputs on the output links
    <dir>/patterns.json                       format, events, both link mappings and value formats

File names follow DemonstratorTools' BoardDataWriter (`<path>_<i>.txt`, one file per buffer's worth
of events). `patterns.json` is what `read_set` and `trigger-ml patterns compare` need to name the
event and the model's value of a difference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.atomic import atomic_file
from trigger_ml.errors import SchemaError
from trigger_ml.patterns.board import BoardData
from trigger_ml.patterns.compare import Comparison, compare
from trigger_ml.patterns.formats import canonical, read_file, write_file, writer
from trigger_ml.patterns.mapping import Layout, LinkMapping, layout, pack, unpack
from trigger_ml.patterns.stream import from_boards, to_boards

SPEC = "patterns.json"
MAX_SPEC = 1 << 24  # bytes of patterns.json (it lists files and value formats: far less)
SIDES = {"inputs": "inputs", "outputs": "expected"}  # side -> file stem


@dataclass(frozen=True)
class Side:
    """One side of a pattern set: its layout and files."""

    layout: Layout
    files: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mapping": self.layout.mapping.to_dict(),
            "widths": list(self.layout.widths),
            "signed": list(self.layout.signed),
            "files": list(self.files),
            "links": list(self.layout.links),
            "words_per_link": self.layout.words_per_link,
        }  # as resolved


def side_layout(d: dict[str, Any], where: str) -> Layout:
    """A layout from a spec's side (`mapping` with the format `widths`: the widths are the
    minimum bits, the mapping's bits what the files use)."""
    try:
        widths, signed = d["widths"], d["signed"]
        mapping = LinkMapping.from_dict(d["mapping"], where)
    except KeyError as exc:
        raise SchemaError(f"{where}: missing {exc}") from None
    if not (
        isinstance(widths, list)
        and isinstance(signed, list)
        and len(widths) == len(signed)
        and all(type(w) is int and 1 <= w <= 64 for w in widths)
        and all(isinstance(x, bool) for x in signed)
    ):
        raise SchemaError(
            f"{where}: 'widths' and 'signed' must be lists of equal length (bits 1-64; true/false)",
            "write the set again with `trigger-ml patterns <firmware>`",
        )
    return layout(mapping, widths, signed)


def write_set(
    out_dir: str | Path,
    raw_in: np.ndarray,
    raw_out: np.ndarray,
    lay_in: Layout,
    lay_out: Layout,
    fmt: str,
    name: str = "CMSSW",
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write input and expected-output pattern files and the spec; returns the spec."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer(fmt)  # an unknown or refused format fails before any file is written
    spec: dict[str, Any] = {"format": canonical(fmt), "events": len(raw_in), **(meta or {})}
    for (side, stem), raw, lay in zip(SIDES.items(), (raw_in, raw_out), (lay_in, lay_out)):
        files = []
        for k, board in enumerate(to_boards(pack(raw, lay), lay, name)):
            files.append(write_file(out_dir / f"{stem}_{k}.txt", board, fmt).name)
        spec[side] = Side(lay, tuple(files)).to_dict()
    with atomic_file(out_dir / SPEC) as tmp:
        Path(tmp).write_text(json.dumps(spec, indent=1) + "\n")
    return spec


def read_spec(set_dir: str | Path) -> dict[str, Any]:
    p = Path(set_dir) / SPEC
    fix = "write the set again with `trigger-ml patterns <firmware>`"
    if not p.exists():
        raise SchemaError(f"{set_dir}: no {SPEC}: not a pattern set", "write one with `trigger-ml patterns <firmware>`")
    if not p.is_file() or p.stat().st_size > MAX_SPEC:
        raise SchemaError(f"{p}: not a regular file of at most {MAX_SPEC} bytes", fix)
    try:
        spec = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SchemaError(f"{p}: not a readable JSON spec ({str(exc)[:200]})", fix) from None
    if not isinstance(spec, dict) or not isinstance(spec.get("format"), str):
        raise SchemaError(f"{p}: not a pattern-set spec (a JSON object with format, inputs and outputs)", fix)
    return spec


class Files(Sequence[BoardData]):
    """A side's pattern files, each read when it is used (one file in memory at a time)."""

    def __init__(self, paths: list[Path], fmt: str | None) -> None:
        self.paths, self.fmt = paths, fmt

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, k: int) -> BoardData:  # type: ignore[override] (no slices)
        return read_file(self.paths[k], self.fmt)


def side_files(set_dir: str | Path, side: str) -> tuple[Files, Layout]:
    """The files (read lazily) and layout of one side ("inputs" or "outputs") of a pattern set."""
    spec = read_spec(set_dir)
    where = f"{Path(set_dir) / SPEC} {side}"
    d = spec.get(side)
    names = d.get("files") if isinstance(d, dict) else None
    if not isinstance(names, list) or not all(
        isinstance(f, str) and f == Path(f).name and f not in ("", ".", "..") for f in names
    ):
        raise SchemaError(
            f"{where}: 'files' must list file names in the set's folder",
            "write the set again with `trigger-ml patterns <firmware>`",
        )
    return Files([Path(set_dir) / f for f in names], canonical(spec["format"])), side_layout(d, where)


def compare_files(
    set_dir: str | Path,
    captured: Sequence[str | Path],
    side: str = "outputs",
    fmt: str | None = None,
    skip: int | None = 0,
) -> Comparison:
    """Compare a board's captured files (in order) with the pattern set's expected `side`, one file
    of each in memory at a time (`compare`'s `skip`: int, or None to align the first valid frames)."""
    if side not in SIDES:
        raise SchemaError(f"side {side!r} is not one of {tuple(SIDES)}")
    expected, lay = side_files(set_dir, side)
    return compare(expected, Files([Path(p) for p in captured], fmt), lay, skip)


def read_side(set_dir: str | Path, side: str) -> tuple[list[BoardData], Layout]:
    """The files and layout of one side ("inputs" or "outputs") of a pattern set."""
    files, lay = side_files(set_dir, side)
    return list(files), lay


def read_values(set_dir: str | Path, side: str) -> np.ndarray:
    """The raw integers (events, values) of one side of a pattern set, read back from its files."""
    boards, lay = read_side(set_dir, side)
    return unpack(from_boards(boards, lay), lay)
