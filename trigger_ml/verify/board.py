"""Board tests of a compiled model: pattern files for its input links and the expected outputs.

`model_patterns` takes the model's inputs (data windows, or fuzzed words of the input format for
an imported model), their raw integers, and the C simulation's raw outputs (exact to the quantized
model: `verify`), and writes them as a pattern set (trigger_ml.patterns.sets) in a
DemonstratorTools format. `compare_capture` reads the files a board captured and names the first
event, link, frame and word that differ from the expected ones, and the model's output in it.

The link mapping of each side comes from `mapping` ({"inputs": {...}, "outputs": {...}}, the keys
of `trigger_ml.patterns.LinkMapping`): the `patterns:` section of the model card once the card
schema has one (docs/cmssw.md), a YAML file given on the command line until then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.compile import manifest
from trigger_ml.compile.emulator import Interface
from trigger_ml.errors import SchemaError
from trigger_ml.patterns import LinkMapping, layout, write_set
from trigger_ml.patterns.sets import compare_files
from trigger_ml.verify.exact import inputs_for
from trigger_ml.verify.levels import csim

SIDES = ("inputs", "outputs")


def mappings(mapping: dict[str, Any] | None, where: str = "patterns") -> dict[str, LinkMapping]:
    """Both sides' LinkMapping from a `patterns:`-style dict (missing sides take the defaults);
    `where` names the file in errors."""
    if mapping is not None and not isinstance(mapping, dict):
        raise SchemaError(
            f"{where.rstrip(':')}: a {type(mapping).__name__} where inputs: and outputs: sections were expected",
            "write inputs: and outputs: mappings of keys (docs/cmssw.md, The link mapping)",
        )
    mapping = dict(mapping or {})
    bad = sorted(map(str, set(mapping) - set(SIDES)))
    if bad:
        raise SchemaError(f"{where.rstrip(':')}: unknown key(s) {bad}", "use inputs: and outputs:")
    return {side: LinkMapping.from_dict(mapping.get(side), _key(where, side)) for side in SIDES}


def _key(where: str, side: str) -> str:
    """`file: inputs` for a mapping file (`where` ends in ':'), `card.yaml: patterns.inputs` for a card."""
    return f"{where} {side}" if where.endswith(":") else f"{where}.{side}"


def layouts(fw_dir: Path, mapping: dict[str, Any] | None, where: str = "patterns") -> dict[str, Any]:
    """Both sides' layouts for a compiled model's value formats (checked before the model runs)."""
    iface = Interface.from_json(manifest.read(fw_dir)["interface"]["emulator"])
    maps = mappings(mapping, where)
    out = {}
    for side, fmt, n in (("inputs", iface.input, iface.n_in), ("outputs", iface.output, iface.n_out)):
        try:
            out[side] = layout(maps[side], [fmt.width] * n, [fmt.signed] * n)
        except SchemaError as exc:
            raise SchemaError(f"{_key(where, side)}: {exc.what}", exc.fix) from None
    return out


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
    where: str = "patterns",
) -> dict[str, Any]:
    """Write the pattern set of model inputs `x` (one row per event) and its expected outputs;
    `where` names the mapping's file in errors."""
    fw_dir = Path(fw_dir)
    m = manifest.read(fw_dir)
    iface = Interface.from_json(m["interface"]["emulator"])
    lays = layouts(fw_dir, mapping, where)  # a bad mapping fails before the model runs
    lay_in, lay_out = lays["inputs"], lays["outputs"]
    level = csim(fw_dir)
    raw_in = iface.to_raw(np.asarray(x, dtype=np.float64).reshape(len(x), -1))
    raw_out = level.predict_raw(raw_in)
    meta = {
        "model": m["model"],
        "model_sha256": m["model_sha256"],
        "source": source,
        "input_format": str(iface.input),
        "output_format": str(iface.output),
    }
    return write_set(out_dir, raw_in, raw_out, lay_in, lay_out, fmt, name=m["model"], meta=meta)


compare_capture = (
    compare_files  # a board's captured files against the set's expected side, one file of each in memory at a time
)
