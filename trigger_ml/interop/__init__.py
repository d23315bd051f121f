"""Foreign model formats in and out: ONNX/QONNX and legacy (Keras 2) QKeras.

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

from trigger_ml.errors import SchemaError, ToolError

log = logging.getLogger(__name__)


def _qonnx(src: Path, weights: Path | None, out: Path, **opts: Any) -> dict[str, Any]:
    from trigger_ml.interop.onnx_import import import_qonnx

    return import_qonnx(src, out)


def _float_onnx(src: Path, weights: Path | None, out: Path, **opts: Any) -> dict[str, Any]:
    from trigger_ml.interop.onnx_import import FloatPolicy, import_float_onnx

    policy = FloatPolicy(**{k: v for k, v in opts.items() if v is not None and k in FloatPolicy.__dataclass_fields__})
    return import_float_onnx(src, out, policy)


def _qkeras(src: Path, weights: Path | None, out: Path, **opts: Any) -> dict[str, Any]:
    from trigger_ml.interop.qkeras_run import import_qkeras

    return import_qkeras(src, weights, out)


# file kind -> importer(src, weights, out, **options) -> the run's import summary
IMPORTERS: dict[str, Callable[..., dict[str, Any]]] = {
    "qonnx": _qonnx,
    "onnx": _float_onnx,
    "qkeras": _qkeras,
}


def file_kind(src: Path) -> str:
    """qonnx (ONNX with QONNX quantizer nodes), onnx (float), qkeras (.json or .h5 of Keras 2)."""
    suffix = src.suffix.lower()
    if suffix == ".onnx":
        _needs_onnx()
        import onnx

        from trigger_ml.interop.onnx_load import is_qonnx

        try:
            model = onnx.load(src, load_external_data=False)
        except Exception as exc:
            raise SchemaError(f"{src}: cannot read it as ONNX ({type(exc).__name__}: {exc})") from exc
        return "qonnx" if is_qonnx(model) else "onnx"
    if suffix in (".json", ".h5", ".hdf5"):
        return "qkeras"
    raise SchemaError(
        f"{src}: unknown model file type {suffix!r}",
        "import takes model.onnx (QONNX or float ONNX), model.json with --weights model.h5, or model.h5",
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


def import_model(src: str | Path, out: str | Path, weights: str | Path | None = None, **opts: Any) -> dict[str, Any]:
    """Import a foreign model file into the run directory `out` (atomic); returns its summary."""
    src, out = Path(src), Path(out)
    if not src.exists():
        raise SchemaError(f"{src}: no such file")
    if weights is not None and not Path(weights).exists():
        raise SchemaError(f"{weights}: no such file")
    kind = file_kind(src)
    if weights is not None and kind != "qkeras":
        raise SchemaError(f"--weights is for a QKeras model.json; {src.name} is {kind}", "drop --weights")
    if kind in ("onnx", "qonnx"):
        _needs_onnx()
    log.info("importing %s as %s", src, kind)
    return IMPORTERS[kind](src, Path(weights) if weights else None, out, **opts)
