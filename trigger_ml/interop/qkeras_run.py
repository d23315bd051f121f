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
import yaml

from trigger_ml.atomic import atomic_dir
from trigger_ml.errors import SchemaError
from trigger_ml.interop.rundir import card_dict


def _layers(info: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i, layer in enumerate(info.get("layers") or []):
        if isinstance(layer, dict):
            out.append({k: v for k, v in layer.items() if isinstance(v, (str, int, float, bool, list))})
        else:
            out.append({"type": str(layer), "name": f"layer_{i}"})
    return out or [{"type": "unknown"}]


def import_qkeras(src: Path, weights: Path | None, out: Path) -> dict[str, Any]:
    from trigger_ml.config import load_card
    from trigger_ml.interop.onnx_import import _name
    from trigger_ml.interop.qkeras_legacy import import_legacy

    with atomic_dir(out) as tmp:
        info = import_legacy(src, weights, tmp / "model.keras")
        shape = [int(d) for d in info["input_shape"] if d is not None]
        fmt = info.get("input_format") or {}
        if not {"integer", "frac"} <= set(fmt):
            raise SchemaError(f"{src}: the model's input format is unknown (no input quantizer)",
                              "give the model a quantized input (QActivation or the first layer's quantizer)")
        grid = [{"inputs": int(np.prod(shape)), "integer": int(fmt["integer"]), "frac": int(fmt["frac"]),
                 "signed": int(bool(fmt.get("signed", 0)))}]
        (tmp / "card.yaml").write_text(yaml.safe_dump(card_dict(_name(src), _layers(info), src, "qkeras"),
                                                      sort_keys=False))
        load_card(tmp / "card.yaml")
        summary = {"source": str(src), "kind": "qkeras", "reference": "keras", "check": "keras", **info}
        (tmp / "metrics.json").write_text(json.dumps({"data": {"input_shape": shape, "input_grid": grid},
                                                      "import": summary}, indent=1, default=str))
        f = tmp / "foreign"
        f.mkdir()
        for p in (src, weights):
            if p is not None:
                shutil.copyfile(p, f / Path(p).name)
        (f / "qkeras_import.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary
