"""Legacy QKeras (Keras 2 json + h5, or one .h5) -> an imported run directory.

The reader (`qkeras_legacy.import_legacy`) rebuilds the model with hgq2's `qkeras` layers in a
subprocess and checks predictions shipped with the file; this module puts its model.keras into
the imported-run format (`rundir`) with the input format it read. The reference is the rebuilt
model itself (verify checks every firmware level against it exactly); the foreign files are kept
under foreign/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.atomic import atomic_dir
from trigger_ml.errors import SchemaError
from trigger_ml.fixed import Fixed, Grid
from trigger_ml.interop.qkeras_legacy import import_legacy
from trigger_ml.interop.rundir import card_dict, model_name, write_card_and_metrics
from trigger_ml.layout import RunDir


def _layers(info: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i, layer in enumerate(info.get("layers") or []):
        if isinstance(layer, dict):
            out.append({k: v for k, v in layer.items() if isinstance(v, (str, int, float, bool, list))})
        else:
            out.append({"type": str(layer), "name": f"layer_{i}"})
    return out or [{"type": "unknown"}]


def import_qkeras(src: Path, weights: Path | None, out: Path) -> dict[str, Any]:
    with atomic_dir(out, marker=RunDir.MARKER) as tmp:
        rd = RunDir(tmp)
        info = import_legacy(src, weights, rd.model)
        shape = [int(d) for d in info["input_shape"] if d is not None]
        fmt = info.get("input_format") or {}
        if not {"integer", "frac"} <= set(fmt):
            raise SchemaError(
                f"{src}: the model's input format is unknown (no input quantizer)",
                "give the model a quantized input (QActivation or the first layer's quantizer)",
            )
        grid = Grid.uniform(
            int(np.prod(shape)), Fixed(bool(fmt.get("signed", 0)), int(fmt["integer"]), int(fmt["frac"]))
        )
        summary = {"source": str(src), "kind": "qkeras", "reference": "keras", "check": "keras", **info}
        write_card_and_metrics(rd, card_dict(model_name(src), _layers(info), src, "qkeras"), shape, grid, summary)
        f = rd.foreign
        f.root.mkdir()
        for p in (src, weights):
            if p is not None:
                shutil.copyfile(p, f.file(Path(p).name))
        f.file("qkeras_import.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary
