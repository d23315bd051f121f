"""Board tests of a compiled model: pattern files for its input links and the expected outputs.

`model_patterns` takes the model's inputs (data windows, or fuzzed words of the input format for
an imported model), their raw integers, and the C simulation's raw outputs (exact to the quantized
model: `verify`), and writes them as a pattern set (trigger_ml.patterns.sets) in a
DemonstratorTools format. `compare_capture` reads the files a board captured and names the first
event, link, frame and word that differ from the expected ones, and the model's output in it.

The link mapping of each side comes from `mapping` ({"inputs": {...}, "outputs": {...}}, the keys
of `trigger_ml.patterns.LinkMapping`): the `patterns:` section of the model card once the card
schema has one (see /work/notes/cmssw.md), a YAML file given on the command line until then.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.compile import manifest
from trigger_ml.compile.emulator import Interface
from trigger_ml.errors import SchemaError
from trigger_ml.patterns import (
    Comparison,
    LinkMapping,
    compare,
    layout,
    read_file,
    read_side,
    write_set,
)
from trigger_ml.verify.exact import inputs_for
from trigger_ml.verify.levels import csim

SIDES = ("inputs", "outputs")


def mappings(mapping: dict[str, Any] | None) -> dict[str, LinkMapping]:
    """Both sides' LinkMapping from a `patterns:`-style dict (missing sides take the defaults)."""
    mapping = dict(mapping or {})
    bad = sorted(set(mapping) - set(SIDES))
    if bad:
        raise SchemaError(f"patterns: unknown key(s) {bad}", "use inputs: and outputs:")
    return {side: LinkMapping.from_dict(mapping.get(side), f"patterns.{side}") for side in SIDES}


def model_inputs_for(fw_dir: Path, ds, events: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """(model inputs, a description): the data windows, or fuzzed words for an imported model."""
    sets = inputs_for(fw_dir, ds, n_fuzz=events, seed=seed)
    if "data" in sets:
        return sets["data"], f"{len(sets['data'])} data windows"
    x = sets["fuzzed"][:events]
    return x, f"{len(x)} fuzzed words of the input format (seed {seed})"


def model_patterns(
    fw_dir: str | Path,
    out_dir: str | Path,
    fmt: str,
    x: np.ndarray,
    mapping: dict[str, Any] | None = None,
    source: str = "",
) -> dict[str, Any]:
    """Write the pattern set of model inputs `x` (one row per event) and its expected outputs."""
    fw_dir = Path(fw_dir)
    m = manifest.read(fw_dir)
    iface = Interface.from_json(m["interface"]["emulator"])
    level = csim(fw_dir)
    raw_in = iface.to_raw(np.asarray(x, dtype=np.float64).reshape(len(x), -1))
    raw_out = level.predict_raw(raw_in)
    maps = mappings(mapping)
    lay_in = layout(maps["inputs"], [iface.input.width] * iface.n_in, [iface.input.signed] * iface.n_in)
    lay_out = layout(maps["outputs"], [iface.output.width] * iface.n_out, [iface.output.signed] * iface.n_out)
    meta = {
        "model": m["model"],
        "model_sha256": m["model_sha256"],
        "source": source,
        "input_format": str(iface.input),
        "output_format": str(iface.output),
    }
    return write_set(out_dir, raw_in, raw_out, lay_in, lay_out, fmt, name=m["model"], meta=meta)


def compare_capture(
    set_dir: str | Path,
    captured: Sequence[str | Path],
    side: str = "outputs",
    fmt: str | None = None,
    skip: int | None = 0,
) -> Comparison:
    """Compare a board's captured files (in order) with the pattern set's expected `side`."""
    if side not in SIDES:
        raise SchemaError(f"side {side!r} is not one of {SIDES}")
    expected, lay = read_side(set_dir, side)
    return compare(expected, [read_file(p, fmt) for p in captured], lay, skip)
