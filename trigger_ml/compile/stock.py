"""The fallback (issue 18, "do not refuse what stock hls4ml converts"): an imported run of kind
`stock` is compiled by hls4ml's own converter from the foreign file, not from model.keras.

A stock run (`interop.stock.import_stock`) holds `stock.json` (the converter, the foreign files,
the default precision) instead of model.keras. Its firmware is labelled "hls4ml converter, not
proven exact": there is no hgq2 model, hence no bit-exact reference and no da4ml RTL (da4ml takes
hgq2 models only); verify measures it against the source's reference (match fraction, first
diverging layer, fidelity gates).

Converters (as tools/stock_hls4ml.py runs hls4ml's documented default flow):
- `keras_v2`: Keras 2 json + h5 weights, or one full h5, through `hls4ml.converters.keras_v2_to_hls`
  (Keras 3 cannot rebuild these files as models), the config of `config_from_keras_model` on the
  same parsed layers, default precision `fixed<16,6>` (or the run's);
- `onnx`: qonnx cleanup, channels-last conversion and Gemm -> MatMul, then `convert_from_onnx_model`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from trigger_ml.errors import SchemaError

log = logging.getLogger(__name__)
LABEL = "hls4ml converter, not proven exact"
CONVERTERS = ("keras_v2", "onnx")


def read_spec(path: Path) -> dict[str, Any]:
    spec = json.loads(Path(path).read_text())
    if spec.get("converter") not in CONVERTERS:
        raise SchemaError(f"{path}: converter {spec.get('converter')!r}", f"one of {list(CONVERTERS)}")
    return spec


def _keras_v2(spec: dict[str, Any], files: dict[str, Path], cfg_base: dict[str, Any], precision: str):
    import h5py
    import hls4ml
    from hls4ml.converters import KerasFileReader, keras_v2_to_hls

    h5 = files[spec["weights"]]
    if spec.get("architecture"):
        arch = json.loads(files[spec["architecture"]].read_text())
    else:
        with h5py.File(h5, "r") as f:
            raw = f.attrs["model_config"]
            arch = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    config = dict(cfg_base)
    config["KerasH5"] = str(h5)
    if spec.get("architecture"):
        config["KerasJson"] = str(files[spec["architecture"]])
    orig = hls4ml.converters.KerasModelReader  # config_from_keras_model reads weights of a dict model
    hls4ml.converters.KerasModelReader = lambda _m: KerasFileReader({"KerasH5": str(h5)})
    try:
        hls_config = hls4ml.utils.config_from_keras_model(
            arch, granularity="name", backend=cfg_base["Backend"], default_precision=precision
        )
    finally:
        hls4ml.converters.KerasModelReader = orig
    hls_config["Model"]["BitExact"] = None
    config["HLSConfig"] = hls_config
    return config, lambda c: keras_v2_to_hls(c)


def _onnx(spec: dict[str, Any], files: dict[str, Path], cfg_base: dict[str, Any], precision: str):
    import hls4ml
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    mw = cleanup_model(ModelWrapper(str(files[spec["model"]])))
    mw = cleanup_model(mw.transform(ConvertToChannelsLastAndClean()).transform(GemmToMatMul()))
    hls_config = hls4ml.utils.config.config_from_onnx_model(
        mw, granularity="name", backend=cfg_base["Backend"], default_precision=precision
    )
    config = dict(cfg_base, HLSConfig=hls_config)

    def convert(c):
        return hls4ml.converters.convert_from_onnx_model(
            mw,
            output_dir=c["OutputDir"],
            project_name=c["ProjectName"],
            backend=c["Backend"],
            hls_config=c["HLSConfig"],
            io_type=c["IOType"],
            part=c["Part"],
            clock_period=c["ClockPeriod"],
            write_weights_txt=False,
            write_tar=False,
        )

    return config, convert


def probe(converter: str, files: dict[str, Path], roles: dict[str, str], precision: str = "fixed<16,6>") -> None:
    """hls4ml's own conversion of `files` (by name), nothing kept: raises what hls4ml raises. A front
    end asks this before it falls back, so a stock run is only written for what hls4ml converts."""
    import contextlib
    import io
    import tempfile

    import hls4ml

    spec = {"converter": converter, **roles}
    with tempfile.TemporaryDirectory(prefix=".tml-tmp-probe-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        base = hls4ml.utils.config.create_config(output_dir=tmp, project_name="myproject", backend="Vitis")
        build = _keras_v2 if converter == "keras_v2" else _onnx
        config, conv = build(spec, files, base, precision)
        conv(config)


def _writer(card) -> dict[str, Any]:
    """hls4ml's project options as compile.hls sets them (weights compiled in: the emulator needs no files)."""
    fw = card.firmware
    return {
        "io_type": fw.io_type,
        "part": fw.part,
        "clock_period": fw.clock_ns,
        "write_weights_txt": False,
        "write_tar": False,
    }


def convert(spec: dict[str, Any], foreign: Path, card, out: Path, strategy: str, backend: str, stamp: str):
    """hls4ml's own conversion of the foreign file(s) into the project `out` (written)."""
    import hls4ml

    from trigger_ml.compile.hls import STRATEGIES, _normalise, check_strategy, hls4ml_conversion, write_project

    check_strategy(strategy)
    files = {name: Path(foreign) / name for name in spec["files"]}
    missing = [n for n, p in files.items() if not p.exists()]
    if missing:
        raise SchemaError(f"{foreign}: missing {missing}", "import the model again")
    base = hls4ml.utils.config.create_config(
        output_dir=str(out), project_name="myproject", backend=backend, **_writer(card)
    )
    what = f"hls4ml's own converter cannot convert {sorted(files)}"
    with hls4ml_conversion(what, "nothing converts this model: neither the exact path nor stock hls4ml"):
        build = _keras_v2 if spec["converter"] == "keras_v2" else _onnx
        config, conv = build(spec, files, base, spec.get("default_precision", "fixed<16,6>"))
        hc = config["HLSConfig"]
        hc["Model"]["Strategy"] = STRATEGIES[strategy]
        hc["Model"]["ReuseFactor"] = 1
        for layer in hc.get("LayerName", {}).values():
            layer["Trace"] = True
        hls_model = conv(config)
        write_project(hls_model)
    _normalise(out, hls_model.config.get_config_value("Stamp"), stamp)
    return hls_model
