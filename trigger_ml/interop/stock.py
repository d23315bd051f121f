"""The fallback run kind (issue 18): a model the exact path cannot express, imported for hls4ml's own
converter (`compile.stock`), verified against the source's reference and labelled "hls4ml converter,
not proven exact" with the measured match.

    import_stock(files, out, converter=..., input_shape=..., reference=..., ...)

writes a run directory without model.keras: `stock.json` (the converter and which foreign file is
what), card.yaml, metrics.json (input shape and grid: the converter's default precision, e.g.
fixed<16,6>, which the firmware's inputs are words of), and foreign/ (the files, the reference's
inputs and outputs, info.json with the reference level as a fidelity check, the source graph when
the front end has one). A front end calls it when `imported.import_graph` raises UnsupportedError
(or the graph cannot be built) and stock hls4ml may still convert the file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.atomic import atomic_dir
from trigger_ml.compile.stock import CONVERTERS, LABEL
from trigger_ml.errors import SchemaError, UnsupportedError
from trigger_ml.fixed import Fixed, Grid
from trigger_ml.interop import ir
from trigger_ml.interop.imported import N_CHECK, SOURCE, to_user, user_layout
from trigger_ml.interop.reference import fidelity
from trigger_ml.interop.rundir import card_dict, write_card_and_metrics
from trigger_ml.layout import RunDir
from trigger_ml.vectors import extreme_inputs

TOLERANCE = {"max_rel_error": 0.01, "argmax_agreement": 0.99}
DEFAULT_FORMAT = "fixed<16,6>"  # hls4ml's default precision: the stock firmware's input words


def import_stock(
    files: list[Path] | tuple[Path, ...],
    out: str | Path,
    *,
    converter: str,
    input_shape: tuple[int, ...],
    name: str,
    roles: dict[str, str],
    reference: Any = None,
    source_graph: ir.Graph | None = None,
    input_format: str = DEFAULT_FORMAT,
    layout: str = "",
    tolerance: dict[str, float] | None = None,
    summary: dict[str, Any] | None = None,
    inputs: np.ndarray | None = None,
) -> dict[str, Any]:
    """Write a stock run. `roles` names the files for the converter: keras_v2 {"architecture":
    json or absent, "weights": h5}, onnx {"model": onnx}. The reference is `reference` (a level with
    `name` and `predict(x)` in the user's layout) or `source_graph` (evaluated; saved in foreign/).
    `inputs`: representative inputs in the user's layout (default: fuzzed words of the input format,
    where a stock design's fixed<16,6> may well overflow); verify measures the firmware on them."""
    if converter not in CONVERTERS:
        raise SchemaError(f"unknown converter {converter!r}", f"one of {list(CONVERTERS)}")
    if reference is None and source_graph is None:
        raise SchemaError("a stock import needs a reference", "pass the source graph or the framework's executor")
    files = [Path(p) for p in files]
    tol = tolerance or dict(TOLERANCE)
    fmt = Fixed.parse(input_format)
    grid = Grid.uniform(int(np.prod(input_shape)), fmt)
    inp = ir.Input("x", tuple(input_shape), None, layout)
    if inputs is None:
        x = extreme_inputs(grid, tuple(input_shape), n_random=N_CHECK, seed=1)
    else:  # representative data (the user's, in their layout): what verify measures the firmware on
        x = ir.to_channels_last(np.asarray(inputs, np.float64), inp)
    lay = {**user_layout(inp), "format": str(fmt)}
    if reference is not None:
        level_name = reference.name
        y = np.asarray(reference.predict(to_user(x, lay)), np.float64).reshape(len(x), -1)
        levels = [{"name": level_name, "kind": "foreign", "check": "fidelity"}]
    else:
        level_name = "source"
        y = source_graph.evaluate(x)[0].reshape(len(x), -1)
        levels = [{"name": "source", "kind": "graph", "graph": SOURCE, "check": "fidelity"}]
    spec = {"converter": converter, "files": sorted(p.name for p in files), "default_precision": str(fmt)}
    spec.update({role: Path(f).name for role, f in roles.items()})
    info = {
        "kind": "stock",
        "label": LABEL,
        "reference": level_name,
        "check": "fidelity",
        "tolerance": tol,
        "levels": levels,
        "input": lay,
        "converter": converter,
    }
    onnx_files = [p.name for p in files if p.suffix == ".onnx"]
    if onnx_files:
        info["file"] = onnx_files[0]
    out_summary = {
        "kind": "stock",
        "label": LABEL,
        "converter": f"hls4ml {converter}",
        "input_format": str(fmt),
        "input_shape": list(input_shape),
        "exact": False,
        "check": "fidelity",
        "reference": level_name,
        "tolerance": tol,
        "n_inputs": int(np.prod(input_shape)),
        "n_outputs": int(y.shape[1]),
        **(summary or {}),
    }
    with atomic_dir(Path(out), kind=RunDir.OUTPUT) as tmp:
        rd = RunDir(tmp)
        rd.stock.write_text(json.dumps(spec, indent=1))
        card = card_dict(name, [{"type": "stock", "converter": converter}], files[0], "stock")
        write_card_and_metrics(rd, card, list(input_shape), grid, out_summary)
        f = rd.foreign
        f.root.mkdir()
        for p in files:
            shutil.copyfile(p, f.file(p.name))
        if source_graph is not None:
            ir.save(source_graph, f.root / SOURCE)
        np.save(f.inputs, x)
        np.save(f.outputs, y)
        info["files"] = sorted(p.name for p in f.root.iterdir())
        f.info.write_text(json.dumps(info, indent=1))
    return out_summary


def _converts(converter: str, files: dict[str, Path], roles: dict[str, str], fmt: str, refused) -> None:
    """hls4ml's converter takes the files, or one refusal with the exact path's reasons and hls4ml's."""
    from trigger_ml.compile.stock import probe

    try:
        probe(converter, files, roles, fmt)
    except Exception as exc:  # noqa: BLE001 - hls4ml's own error, reported beside the exact path's
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise UnsupportedError(
            f"{refused.what}\nand stock hls4ml cannot convert it either ({why})", refused.fix
        ) from refused


def onnx_fallback(src: Path, model, out: Path, refused: UnsupportedError, input_format: str | None = None):
    """A .onnx file the exact path refused (`refused`): a stock run when stock hls4ml converts it,
    with the file's own executor (qonnx's or onnxruntime) as the reference; else one refusal naming
    both paths' reasons. Inputs of shape (batch, features) only (an image file's layout is for the
    exact path)."""
    import tempfile

    import onnx

    from trigger_ml.interop.imported import _identifier
    from trigger_ml.interop.onnx_load import is_qonnx, normalise
    from trigger_ml.interop.reference import OrtSession, QonnxExecutor, input_shape

    shape = tuple(input_shape(model))
    if len(model.graph.output) != 1 or len(shape) != 1:
        raise UnsupportedError(
            f"{refused.what}\nno fallback to hls4ml's converter: it takes one (batch, features) input and"
            f" one output here (this file: input {list(shape)}, {len(model.graph.output)} output(s))",
            refused.fix,
        ) from refused
    fmt = input_format or DEFAULT_FORMAT
    model, notes = normalise(model)  # what the executors and hls4ml read (an IR version capped, ...)
    with tempfile.TemporaryDirectory(prefix=".tml-tmp-onnx-") as tmp:
        kept = Path(tmp) / src.name
        onnx.save(model, kept)
        _converts("onnx", {kept.name: kept}, {"model": kept.name}, fmt, refused)
        level = QonnxExecutor(model) if is_qonnx(model) else OrtSession(model)
        return import_stock(
            [kept],
            out,
            converter="onnx",
            input_shape=shape,
            name=_identifier(model.graph.name or src.stem),
            roles={"model": kept},
            reference=level,
            input_format=fmt,
            summary={"exact_path": f"refused: {refused.what}", **({"notes": notes} if notes else {})},
        )


def keras_fallback(
    src: Path, weights: Path | None, graph: ir.Graph, out: Path, refused: UnsupportedError, input_format: str | None
):
    """A Keras 2 file (json + h5, or one h5) that was read but that the exact path cannot express
    (`refused`): a stock run when hls4ml's keras_v2 converter takes it, the graph read from the file
    (the source's own formulas) as the reference; else one refusal naming both paths' reasons."""
    from trigger_ml.interop.imported import _identifier

    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedError(
            f"{refused.what}\nno fallback to hls4ml's converter for {len(graph.inputs)} inputs and"
            f" {len(graph.outputs)} outputs here",
            refused.fix,
        ) from refused
    files = [src] + ([Path(weights)] if weights is not None else [])
    roles = {"weights": Path(weights or src)} | ({"architecture": src} if weights is not None else {})
    fmt = input_format or DEFAULT_FORMAT
    _converts("keras_v2", {p.name: p for p in files}, {k: p.name for k, p in roles.items()}, fmt, refused)
    return import_stock(
        files,
        out,
        converter="keras_v2",
        input_shape=tuple(graph.inputs[0].shape),
        name=_identifier(graph.name or src.stem),
        roles=roles,
        source_graph=graph,
        input_format=fmt,
        summary={"exact_path": f"refused: {refused.what}"},
    )


def measure(y_fw: np.ndarray, y_ref: np.ndarray) -> dict[str, float]:
    """The figures a stock firmware is labelled with: the fraction of output values equal to the
    reference's, and the fidelity figures."""
    return {"match_fraction": float(np.mean(y_fw == y_ref)), **fidelity(y_fw, y_ref)}
