"""The imported-run format: a directory that `trigger-ml compile` and `trigger-ml verify` take.

    model.keras     the model as hgq2 layers (the golden model of every firmware level)
    card.yaml       task `imported`, input `tensor`, its layers (a description) and firmware defaults
    metrics.json    data.input_shape and data.input_grid (the input format, possibly signed), and
                    `import`: what was imported and the import's own check
    foreign/        the foreign model's reference: model.onnx (normalised) or the QKeras files,
                    info.json (kind, reference, check exact|fidelity, tolerances), inputs.npy and
                    outputs.npy (the reference's outputs on the import's test vectors)

Compile keeps foreign/ as reference/foreign/, so verify runs the foreign reference from the
firmware directory alone. Written atomically: a failed import leaves nothing behind.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from trigger_ml.atomic import atomic_dir
from trigger_ml.config import Firmware, load_card
from trigger_ml.fixed import Grid
from trigger_ml.layout import RunDir


@dataclass
class ImportedRun:
    name: str
    model: Any  # keras model
    lowered: Any  # lower.Lowered, or a list of card layer dicts
    input_grid: Grid
    foreign_model: Any  # onnx.ModelProto, or None (files given in `foreign_files`)
    inputs: np.ndarray
    outputs: np.ndarray
    info: dict[str, Any]
    source: Path
    foreign_files: tuple[Path, ...] = ()


def model_name(src: Path) -> str:
    """A model name from a file name: an identifier (the card's name rule)."""
    name = re.sub(r"\W", "_", src.stem, flags=re.ASCII).strip("_")[:60] or "imported"
    return name if name[0].isalpha() else f"m_{name}"[:64]


def card_dict(name: str, layers: list[dict[str, Any]], source: Path, kind: str) -> dict[str, Any]:
    import dataclasses

    return {
        "name": name,
        "task": "imported",
        "input": "tensor",
        "classes": [],
        "layers": layers,
        "firmware": dataclasses.asdict(Firmware()),
        "description": f"imported by `trigger-ml import` from {source.name} ({kind})",
    }


def write_run(out: Path, run: ImportedRun) -> dict[str, Any]:
    """Write the run directory atomically; returns metrics.json's `import` section."""
    layers = run.lowered.describe() if hasattr(run.lowered, "describe") else list(run.lowered)
    shape = list(run.model.input_shape[1:])
    summary = {
        "source": str(run.source),
        "kind": run.info["kind"],
        "n_inputs": int(np.prod(shape)),
        "n_outputs": int(run.outputs.shape[1]),
        "layers": len(layers),
        **run.info,
    }
    with atomic_dir(out, kind=RunDir.OUTPUT) as tmp:
        rd = RunDir(tmp)
        run.model.save(rd.model)
        write_card_and_metrics(
            rd, card_dict(run.name, layers, run.source, run.info["kind"]), shape, run.input_grid, summary
        )
        f = rd.foreign
        f.root.mkdir()
        info = dict(run.info)
        if run.foreign_model is not None:
            import onnx

            onnx.save(run.foreign_model, f.onnx)
            info["file"] = f.onnx.name
        for p in run.foreign_files:
            shutil.copyfile(p, f.file(p.name))
        info["files"] = sorted(p.name for p in f.root.iterdir())
        np.save(f.inputs, run.inputs)
        np.save(f.outputs, run.outputs)
        f.info.write_text(json.dumps(info, indent=1, default=str))
    return summary


def write_card_and_metrics(
    rd: RunDir, card: dict[str, Any], shape: list[int], grid: Grid, summary: dict[str, Any]
) -> None:
    """The imported run's card.yaml (checked by loading it back) and metrics.json (input shape and grid)."""
    rd.card.write_text(yaml.safe_dump(card, sort_keys=False))
    load_card(rd.card)  # the card we wrote must load
    metrics = {"data": {"input_shape": shape, "input_grid": grid.to_json()}, "import": summary}
    rd.metrics.write_text(json.dumps(metrics, indent=1, default=str))
