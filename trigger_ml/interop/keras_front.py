"""The Keras-family front ends: Keras 2 (json + h5, full .h5), Keras 3 (.keras), QKeras (Keras 2
files) and HGQ v1 proxy models (.h5) -> one `ir.Graph` each, whose `evaluate` is the source
framework's inference.

    graph = read_keras2_json(Path("model.json"), Path("weights.h5"))  # float Keras 2 or QKeras
    graph = read_keras2_h5(Path("model.h5"))                          # full Keras 2 .h5, QKeras or HGQ v1
    graph = read_keras3(Path("model.keras"))                          # Keras 3 .keras
    graph = read_model(path, weights=None)                            # by `file_kind`

The graph holds everything a run needs: inputs (shape, and `Input.q` when the model quantizes its
input first; None when it does not say: the policy then applies `--input-format`), nodes with
quantized weights, outputs, `source` (what was read) and `notes` (float parts, near-boundary
weights). Nothing is executed from the files: no Keras import, a Lambda or an unknown class is
refused with the rest of the model's problems in one error.

`file_kind(path)`: .keras -> "keras3"; .json / .h5 -> "hgq1" when a layer is a FixedPointQuantizer,
"qkeras" when a layer is a QKeras class (or from a qkeras module), else "keras" (float Keras 2).
`import_keras(src, weights, out, **opts)` is the importer: the graph, then `interop.lower.import_graph`
(the lowering and the run directory).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from trigger_ml.errors import SchemaError, UnsupportedError
from trigger_ml.interop import hgq1_front, keras_layers, qkeras_front, qkeras_quant
from trigger_ml.interop import keras_files as kf
from trigger_ml.interop.imported import import_graph
from trigger_ml.interop.ir import Graph
from trigger_ml.interop.keras_build import build, describe_files
from trigger_ml.interop.policy import policy_options

KINDS = ("keras", "qkeras", "hgq1", "keras3")
_HANDLERS = {**keras_layers.LAYERS, **qkeras_front.LAYERS, **hgq1_front.LAYERS}
_KERAS = ("keras", "tensorflow", "tf_keras")
# per kind: the layer handlers and the packages a layer's `module` may name
TABLES = {
    "keras": (keras_layers.LAYERS, _KERAS),
    "qkeras": ({**keras_layers.LAYERS, **qkeras_front.LAYERS}, (*_KERAS, "qkeras")),
    "hgq1": ({**keras_layers.LAYERS, **hgq1_front.LAYERS}, (*_KERAS, "HGQ")),
    "keras3": (keras_layers.LAYERS, _KERAS),  # plain Keras layers (an hgq2 .keras is compiled directly)
}
_ALTERNATIVES = {**keras_layers.ALTERNATIVES, **qkeras_front.ALTERNATIVES, **hgq1_front.ALTERNATIVES}
SUPPORTED = (
    "layers: InputLayer, "
    + ", ".join(k for k in _HANDLERS if not k.startswith("HGQ>"))
    + ". QKeras quantizers: "
    + qkeras_quant.SUPPORTED
)


def kind_of_classes(classes: list[tuple[str, str]]) -> str:
    names = {c for c, _ in classes}
    if names & set(hgq1_front.CLASSES):
        return "hgq1"
    if names & set(qkeras_front.LAYERS) or any(m.startswith("qkeras") for _, m in classes):
        return "qkeras"
    return "keras"


def _graph(model: kf.KModel, kind: str) -> Graph:
    what = {"keras": "Keras", "qkeras": "QKeras", "hgq1": "HGQ v1 proxy", "keras3": "Keras"}[kind]
    source = f"{what} {model.keras_version or '?'} {model.fmt} ({describe_files(model.files)})"
    handlers, modules = TABLES[kind]
    graph = build(model, handlers, _ALTERNATIVES, SUPPORTED, source, modules)
    if kind == "qkeras" and all(i.q is None for i in graph.inputs):
        graph.notes.append("no input quantizer: the input format is the import's choice (--input-format)")
    return graph


def read_keras2_json(src: Path, weights: Path | None) -> Graph:
    """Keras 2 `model.to_json()` + `save_weights` h5 (float Keras or QKeras)."""
    model = kf.read_keras2_json(Path(src), Path(weights) if weights is not None else None)
    return _graph(model, kind_of_classes([(layer.cls, layer.module) for layer in model.layers]))


def read_keras2_h5(src: Path) -> Graph:
    """A full Keras 2 .h5 (float Keras, QKeras or an HGQ v1 proxy model)."""
    model = kf.read_keras2_h5(Path(src))
    return _graph(model, kind_of_classes([(layer.cls, layer.module) for layer in model.layers]))


def read_keras3(src: Path) -> Graph:
    """A Keras 3 .keras file (plain Keras layers)."""
    return _graph(kf.read_keras3(Path(src)), "keras3")


def file_kind(src: Path) -> str:
    """keras3 (.keras), hgq1 / qkeras / keras (.json, .h5, .hdf5: by the layer classes)."""
    suffix = src.suffix.lower()
    if suffix == ".keras":
        kf.sniff_config(src)
        return "keras3"
    if suffix in (".json", ".h5", ".hdf5"):
        return kind_of_classes(kf.layer_classes(kf.sniff_config(src)))
    raise SchemaError(f"{src}: not a Keras file ({suffix!r})", "give model.json (+ --weights), model.h5 or model.keras")


def read_model(src: Path, weights: Path | None = None) -> Graph:
    """The graph of any Keras-family model file (the reader chosen by the suffix)."""
    src = Path(src)
    suffix = src.suffix.lower()
    if weights is not None and suffix != ".json":
        raise SchemaError(f"{src}: --weights is only for a model json; this file carries its weights", "drop --weights")
    readers: dict[str, Callable[[], Graph]] = {
        ".json": lambda: read_keras2_json(src, weights),
        ".h5": lambda: read_keras2_h5(src),
        ".hdf5": lambda: read_keras2_h5(src),
        ".keras": lambda: read_keras3(src),
    }
    if suffix not in readers:
        raise SchemaError(
            f"{src}: not a Keras file ({suffix!r})", "give model.json (+ --weights), model.h5 or model.keras"
        )
    return readers[suffix]()


def import_keras(src: Path, weights: Path | None, out: Path, **opts: Any) -> dict[str, Any]:
    """The importer for the Keras kinds: the graph (every problem found first, nothing written), then
    the precision policy, the lowering and the run directory (`interop.imported.import_graph`). The
    reference is the graph itself: the source's own formulas (QKeras, HGQ v1, Keras), run by verify
    as the `source` level."""
    graph = read_model(src, weights)
    files = [Path(src)] + ([Path(weights)] if weights is not None else [])
    try:
        return import_graph(graph, Path(out), policy_options=policy_options(**opts), foreign_files=files)
    except UnsupportedError as refused:  # read, but not expressible exactly: stock hls4ml where it converts
        if Path(src).suffix.lower() == ".keras":
            raise  # hls4ml's converter for Keras 2 files only
        from trigger_ml.interop.stock import keras_fallback

        return keras_fallback(Path(src), weights, graph, Path(out), refused, opts.get("input_format"))
