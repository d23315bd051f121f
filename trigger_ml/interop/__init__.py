"""Foreign model formats in and out: ONNX/QONNX and the Keras family (Keras 2/3, QKeras, HGQ v1).

`import_model(src, out)` turns a foreign model file into an imported run directory (the format is
in `rundir`) that `trigger-ml compile` and `trigger-ml verify` take; the importer is chosen from
the registry `IMPORTERS` by the file kind (`file_kind`). `export_run` (in `onnx_export`) writes a
trained run as float ONNX and QONNX. The onnx, onnxruntime and qonnx imports live only in this
package (optional extra `onnx`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trigger_ml.atomic import check_destination
from trigger_ml.errors import SchemaError, ToolError
from trigger_ml.interop import limits, shipped
from trigger_ml.layout import RunDir

log = logging.getLogger(__name__)


def _onnx(src: Path, weights: Path | None, out: Path, **opts: Any) -> dict[str, Any]:
    from trigger_ml.interop.onnx_front import import_file

    if weights is not None:
        raise SchemaError(f"{src}: an ONNX file holds its weights; --weights is for Keras model.json files")
    return import_file(src, out, **opts)


def _keras(src: Path, weights: Path | None, out: Path, **opts: Any) -> dict[str, Any]:
    from trigger_ml.interop.keras_front import import_keras

    return import_keras(src, weights, out, **opts)


# file kind -> importer(src, weights, out, **options) -> the run's import summary
IMPORTERS: dict[str, Callable[..., dict[str, Any]]] = {
    "qonnx": _onnx,  # ONNX with QONNX quantizers (Brevitas, QKeras/HGQ exports): exact against qonnx's executor
    "onnx": _onnx,  # float ONNX (Keras, PyTorch): fidelity against onnxruntime
    "keras": _keras,  # float Keras 2: model.json + weights .h5, or a full .h5
    "qkeras": _keras,  # QKeras (Keras 2 files)
    "hgq1": _keras,  # HGQ v1 proxy model (.h5 with FixedPointQuantizer layers)
    "keras3": _keras,  # Keras 3 .keras
}


def file_kind(src: Path) -> str:
    """qonnx (ONNX with QONNX quantizer nodes), onnx (float); for .json / .h5 / .keras the Keras
    kinds of `keras_front.file_kind` (keras, qkeras, hgq1, keras3), read from the file's layers."""
    suffix = src.suffix.lower()
    if suffix == ".onnx":
        _needs_onnx()

        from trigger_ml.interop.onnx_load import is_qonnx, read_proto

        model = read_proto(src)
        return "qonnx" if is_qonnx(model) else "onnx"
    if suffix in (".json", ".h5", ".hdf5", ".keras"):
        from trigger_ml.interop.keras_front import file_kind as keras_kind

        return keras_kind(src)
    raise SchemaError(
        f"{src}: unknown model file type {suffix!r}",
        "import takes model.onnx (QONNX or float ONNX), model.json with --weights model.h5, model.h5 or model.keras",
    )


def _needs_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import qonnx  # noqa: F401
    except ImportError as exc:
        raise ToolError(
            f"ONNX support is not installed ({exc.name} is missing)", "pip install 'trigger-ml[onnx]'"
        ) from exc


def import_model(
    src: str | Path,
    out: str | Path,
    weights: str | Path | None = None,
    *,
    max_model_mb: int | None = None,
    max_layers: int | None = None,
    predictions: str | Path | None = None,
    **opts: Any,
) -> dict[str, Any]:
    """Import a foreign model file into the run directory `out` (atomic); returns its summary.
    `max_model_mb` / `max_layers`: the resource limits on the file (`limits`; None: the defaults)."""
    check_destination(Path(out), RunDir.OUTPUT)  # before the import's work, not after
    with limits.use(max_model_mb, max_layers):
        return _import(Path(src), Path(out), weights, predictions, **opts)


def _import(
    src: Path, out: Path, weights: str | Path | None, predictions: str | Path | None = None, **opts: Any
) -> dict[str, Any]:
    if not src.exists():
        raise SchemaError(f"{src}: no such file")
    if weights is not None and not Path(weights).exists():
        raise SchemaError(f"{weights}: no such file")
    kind = file_kind(src)
    if weights is not None and src.suffix.lower() != ".json":
        raise SchemaError(f"--weights is for a Keras model.json; {src.name} is {kind}", "drop --weights")
    if kind in ("onnx", "qonnx"):
        _needs_onnx()
    log.info("importing %s as %s", src, kind)
    w = Path(weights) if weights else None
    pred = Path(predictions) if predictions is not None else shipped.companion(src)
    if pred is None:
        return IMPORTERS[kind](src, w, out, **opts)
    return shipped.import_checked(lambda dest: IMPORTERS[kind](src, w, dest, **opts), out, pred)
