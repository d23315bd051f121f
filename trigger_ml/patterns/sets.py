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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.atomic import atomic_file
from trigger_ml.errors import SchemaError
from trigger_ml.patterns.board import BoardData
from trigger_ml.patterns.formats import canonical, read_file, write_file, writer
from trigger_ml.patterns.mapping import Layout, LinkMapping, layout, pack, unpack
from trigger_ml.patterns.stream import from_boards, to_boards

SPEC = "patterns.json"
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
        return layout(LinkMapping.from_dict(d["mapping"], where), d["widths"], d["signed"])
    except KeyError as exc:
        raise SchemaError(f"{where}: missing {exc}") from None


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
    if not p.exists():
        raise SchemaError(f"{set_dir}: no {SPEC}: not a pattern set", "write one with `trigger-ml patterns <firmware>`")
    return json.loads(p.read_text())


def read_side(set_dir: str | Path, side: str) -> tuple[list[BoardData], Layout]:
    """The files and layout of one side ("inputs" or "outputs") of a pattern set."""
    spec = read_spec(set_dir)
    lay = side_layout(spec[side], f"{SPEC} {side}")
    return [read_file(Path(set_dir) / f, spec["format"]) for f in spec[side]["files"]], lay


def read_values(set_dir: str | Path, side: str) -> np.ndarray:
    """The raw integers (events, values) of one side of a pattern set, read back from its files."""
    boards, lay = read_side(set_dir, side)
    return unpack(from_boards(boards, lay), lay)
