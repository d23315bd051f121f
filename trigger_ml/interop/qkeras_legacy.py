"""Legacy QKeras (Keras 2) models in: read with json/h5py, rebuild on Keras 3 with hgq2's `qkeras`.

    info = import_legacy(Path("model.json"), Path("weights.h5"), Path("out/model.keras"))
    info = import_legacy(Path("model.h5"), None, Path("out/model.keras"))

Input files, as Keras 2.x writes them (neither Keras 2 nor Google QKeras is needed):
- `model.to_json()` (class_name/config/inbound_nodes) + `model.save_weights("w.h5")` (root
  attribute `layer_names`; one group per layer with a `weight_names` attribute), or
- a full `model.save("m.h5")`: root attribute `model_config` + the same layout under `model_weights`.

Shipped predictions (convention): a companion `<stem>.predictions.npz` next to the model file
(`model.json` -> `model.predictions.npz`, `m.h5` -> `m.predictions.npz`) with arrays `x` (inputs)
and `y` (the QKeras model's outputs). When present, the rebuilt model must reproduce `y` exactly
(the quantized model in float64, as verify evaluates it); a difference raises `MismatchError`.

`import qkeras.qlayers` (hgq2's QKeras layer) rewrites every `hgq.layers` constructor in its
process, so the rebuild runs in a child process (`python -m trigger_ml.interop.qkeras_legacy`);
the caller's process only imports `qkeras.quantizers`, which registers the quantizer configs the
saved model refers to and leaves hgq's layers alone. The model file is written atomically.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.atomic import atomic_file, scratch_dir
from trigger_ml.errors import SchemaError, ToolError, UnsupportedError, require_equal
from trigger_ml.interop.qkeras_quantizers import SUPPORTED_QUANTIZERS, Mapped, map_quantizer, qkeras_quantize
from trigger_ml.train.fit import load_model
from trigger_ml.train.golden import QuantizedModel

log = logging.getLogger(__name__)

SUPPORTED_LAYERS: dict[str, str] = {
    "InputLayer": "the model input",
    "QActivation": "with a supported quantizer (the first one after the input defines the input grid)",
    "QDense": "kernel_quantizer and bias_quantizer required; activation linear or a supported quantizer",
    "QConv2D": "channels_last, dilation 1, groups 1; quantizers and activation as QDense",
    "Flatten": "channels_last",
}
PREDICTIONS_SUFFIX = ".predictions.npz"
_LINEAR = (None, "linear")


def predictions_file(src: Path) -> Path:
    """Where shipped predictions for `src` live (the convention above)."""
    return src.with_name(src.stem + PREDICTIONS_SUFFIX)


# --------------------------------------------------------------------------- reading


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _read_weights(group) -> dict[str, dict[str, np.ndarray]]:
    """Keras 2 weight layout: layer groups named in `layer_names`, arrays named in `weight_names`."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for lname in (_text(n) for n in group.attrs.get("layer_names", [])):
        g = group[lname]
        arrays = {}
        for wname in (_text(n) for n in g.attrs.get("weight_names", [])):
            arrays[wname.rsplit("/", 1)[-1].split(":", 1)[0]] = np.asarray(g[wname])
        out[lname] = arrays
    return out


def read_source(src: Path, weights: Path | None) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]], str]:
    """(Keras 2 model config, weights by layer and name, format) from json+h5 or a full .h5."""
    import h5py

    if not src.exists():
        raise SchemaError(f"{src}: no such file", "give the model json (with --weights) or a full Keras 2 .h5")
    if src.suffix == ".json":
        if weights is None or not weights.exists():
            raise SchemaError(
                f"{src}: a model json needs its weights file ({weights or 'none given'} not found)",
                "pass the .h5 written by model.save_weights() as the weights",
            )
        try:
            config = json.loads(src.read_text())
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{src}: not JSON ({exc})", "give the output of model.to_json()") from exc
        with h5py.File(weights, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in group.attrs:
                raise SchemaError(
                    f"{weights}: no layer_names attribute: not a Keras 2 weights file",
                    "write it with Keras 2's model.save_weights('weights.h5')",
                )
            return config, _read_weights(group), "json+h5"
    if src.suffix in (".h5", ".hdf5"):
        if weights is not None:
            raise SchemaError(
                f"{src}: a full .h5 model carries its weights; got a separate weights file too",
                "drop the weights argument, or give the model json instead",
            )
        with h5py.File(src, "r") as f:
            if "model_config" not in f.attrs or "model_weights" not in f:
                raise SchemaError(
                    f"{src}: no model_config attribute or model_weights group: not a full Keras 2 model",
                    "save it with Keras 2's model.save('model.h5'), or give model json + weights",
                )
            return json.loads(_text(f.attrs["model_config"])), _read_weights(f["model_weights"]), "h5"
    raise SchemaError(f"{src}: unknown model file type {src.suffix!r}", "give a .json (+ weights .h5) or a full .h5")


# --------------------------------------------------------------------------- planning


def _chain(config: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The model's layers in order, when they form one chain (Sequential or a linear functional)."""
    cls, conf = config.get("class_name"), config.get("config", {})
    layers = list(conf.get("layers", [])) if isinstance(conf, dict) else []
    if cls not in ("Sequential", "Functional", "Model") or not layers:
        return [], [
            f"top-level class {cls!r} with {len(layers)} layers: expected a Keras 2 Sequential or functional Model"
        ]
    if cls == "Sequential":
        return layers, []
    errors = []
    for prev, layer in zip(layers, layers[1:]):
        nodes = layer.get("inbound_nodes") or []
        inbound = [t[0] for node in nodes for t in node] if nodes and isinstance(nodes[0], list) else None
        if inbound != [prev.get("name", prev["config"].get("name"))]:
            errors.append(
                f"layer {layer['config'].get('name')!r}: inbound {inbound}: only single-input chains "
                "(each layer fed by the one before) are supported"
            )
    return layers, errors


def _input_shape(layers: list[dict[str, Any]]) -> list[int] | None:
    conf = layers[0].get("config", {})
    shape = conf.get("batch_input_shape") or conf.get("batch_shape")
    return [int(s) for s in shape[1:]] if shape else None


class _Plan:
    def __init__(self) -> None:
        self.specs: list[dict[str, Any]] = []
        self.weights: dict[str, np.ndarray] = {}
        self.quantizers: list[dict[str, Any]] = []
        self.layers: list[dict[str, str]] = []
        self.errors: list[str] = []

    def quantizer(self, layer: str, role: str, conf: Any, on_weights: bool) -> Mapped | None:
        m, why = map_quantizer(conf, on_weights=on_weights)
        if m is None:
            self.errors += [f"layer {layer!r} {role}: {w}" for w in why]
            return None
        self.quantizers.append({"layer": layer, "role": role, "original": m.original, "hgq2": m.describe()})
        return m


def plan(
    config: dict[str, Any], weights: dict[str, dict[str, np.ndarray]], input_quantizer: str | None = None
) -> _Plan:
    """Map every layer and quantizer (all problems collected) and the weights to load."""
    p = _Plan()
    layers, p.errors = _chain(config)
    if not layers:
        return p
    shape = _input_shape(layers)
    if shape is None:
        p.errors.append("no input shape (batch_input_shape) on the first layer")
    first = layers[0].get("config", {}).get("name") if layers[0].get("class_name") == "InputLayer" else None
    # hls4ml reserves the layer name "input"
    p.specs.append({"kind": "input", "shape": shape, "name": first if first not in (None, "input") else "model_input"})
    if input_quantizer is not None:
        m = p.quantizer("input_quantizer", "input quantizer (given)", input_quantizer, on_weights=False)
        if m is not None:
            p.specs.append({"kind": "quantizer", "name": "input_quantizer", "q": m.hgq2})
    for i, layer in enumerate(layers):
        cls, conf = layer.get("class_name"), layer.get("config", {})
        name = conf.get("name", f"layer_{i}")
        if cls == "InputLayer":
            continue
        if cls not in SUPPORTED_LAYERS:
            p.errors.append(f"layer {name!r}: {cls} is not supported")
            continue
        p.layers.append({"name": name, "class": cls})
        if cls == "QActivation":
            m = p.quantizer(name, "activation", conf.get("activation"), on_weights=False)
            if m is not None:
                p.specs.append({"kind": "quantizer", "name": name, "q": m.hgq2})
        elif cls == "Flatten":
            if conf.get("data_format") not in (None, "channels_last"):
                p.errors.append(f"layer {name!r}: Flatten data_format {conf.get('data_format')!r}")
            p.specs.append({"kind": "flatten", "name": name})
        else:
            _weighted(p, name, cls, conf, weights.get(name, {}))
    if len(p.specs) < 2 or p.specs[1]["kind"] != "quantizer":
        p.errors.append(
            "the first layer after the input is not a QActivation: the input grid (precision) is "
            "undefined, so no firmware can be bit-exact (pass input_quantizer, e.g. "
            "'quantized_bits(16,6)', to put one in front)"
        )
    return p


def _weighted(p: _Plan, name: str, cls: str, conf: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    use_bias = bool(conf.get("use_bias", True))
    spec: dict[str, Any] = {"kind": "dense" if cls == "QDense" else "conv2d", "name": name, "use_bias": use_bias}
    if cls == "QDense":
        spec["units"] = int(conf["units"])
    else:
        spec.update(
            filters=int(conf["filters"]),
            kernel_size=list(conf["kernel_size"]),
            strides=list(conf.get("strides", (1, 1))),
            padding=conf.get("padding", "valid"),
        )
        if conf.get("data_format") not in (None, "channels_last"):
            p.errors.append(f"layer {name!r}: data_format {conf.get('data_format')!r} (channels_last only)")
        if tuple(conf.get("dilation_rate", (1, 1))) != (1, 1) or int(conf.get("groups", 1)) != 1:
            p.errors.append(
                f"layer {name!r}: dilation_rate {conf.get('dilation_rate')} / groups {conf.get('groups')} (1 only)"
            )
    roles = [("kernel", "kernel_quantizer")] + ([("bias", "bias_quantizer")] if use_bias else [])
    for wname, key in roles:
        if conf.get(key) is None:
            p.errors.append(f"layer {name!r}: no {key}: float {wname}s are not fixed point")
            continue
        m = p.quantizer(name, key, conf[key], on_weights=True)
        if m is None:
            continue
        spec["kq" if wname == "kernel" else "bq"] = m.hgq2
        if wname not in arrays:
            p.errors.append(f"layer {name!r}: the weights file has no {wname} (has {sorted(arrays)})")
            continue
        w = arrays[wname]
        p.weights[f"{name}/{wname}"] = qkeras_quantize(w, m).astype(np.float32) if m.weight_scale != 1.0 else w
    act = conf.get("activation")
    p.specs.append(spec)
    if act not in _LINEAR:
        m = p.quantizer(name, "activation", act, on_weights=False)
        if m is not None:
            p.specs.append({"kind": "quantizer", "name": f"{name}_activation", "q": m.hgq2})
            p.layers.append({"name": f"{name}_activation", "class": f"(activation of {name})"})


def _unsupported(src: Path, errors: list[str]) -> UnsupportedError:
    listing = "\n  - ".join(errors)
    supported = "; ".join(f"{k} ({v})" for k, v in SUPPORTED_LAYERS.items())
    quantizers = "; ".join(f"{k} ({v})" for k, v in SUPPORTED_QUANTIZERS.items())
    return UnsupportedError(
        f"{src}: {len(errors)} unsupported item(s) in the QKeras model:\n  - {listing}",
        f"supported layers: {supported}. Supported quantizers: {quantizers}. See docs/interop-qkeras.md",
    )


# --------------------------------------------------------------------------- import


def import_legacy(
    src: Path, weights: Path | None, out_model: Path, *, input_quantizer: str | None = None
) -> dict[str, Any]:
    """Rebuild a Keras 2 QKeras model on Keras 3 (hgq2's qkeras layers) and save it to `out_model`.

    Returns the input shape and format, the layers, the quantizers mapped (QKeras -> hgq2) and the
    shipped-predictions check. Raises UnsupportedError listing every unsupported layer/quantizer,
    SchemaError for unreadable files, MismatchError when shipped predictions are not reproduced.
    """
    t0 = time.perf_counter()
    src, out_model = Path(src), Path(out_model)
    weights = Path(weights) if weights is not None else None
    if out_model.suffix != ".keras":
        raise SchemaError(f"{out_model}: the rebuilt model is saved as a Keras 3 file", "name it <something>.keras")
    config, arrays, fmt = read_source(src, weights)
    p = plan(config, arrays, input_quantizer)
    if p.errors:
        raise _unsupported(src, p.errors)
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        (tmp / "spec.json").write_text(json.dumps(p.specs))
        np.savez(tmp / "weights.npz", **p.weights)
        _run_child(tmp)
        built = tmp / "model.keras"
        check = _check_predictions(built, predictions_file(src))
        with atomic_file(out_model) as dest:
            dest.write_bytes(built.read_bytes())
    q_in = p.specs[1]["q"]
    return {
        "source": str(src),
        "weights": str(weights) if weights else None,
        "format": fmt,
        "keras_version": config.get("keras_version"),
        "model": str(out_model),
        "input_shape": p.specs[0]["shape"],
        "input_format": {
            "signed": q_in["keep_negative"],
            "integer": q_in["integer"],
            "frac": q_in["bits"] - q_in["integer"],
            "round": "RND_CONV",
            "overflow": "SAT",
        },
        "layers": p.layers,
        "quantizers": p.quantizers,
        "predictions": check,
        "notes": [
            "QKeras rounds half to even (RND_CONV): hls4ml has it (AP_RND_CONV) and compile gives da4ml "
            "exact tie detection for it (trigger_ml.compile.rounding), so every level is checked"
        ],
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _run_child(tmp: Path) -> None:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # this trigger_ml, not another install
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    r = subprocess.run(
        [sys.executable, "-m", "trigger_ml.interop.qkeras_legacy", str(tmp)], capture_output=True, text=True, env=env
    )
    if r.returncode != 0 or not (tmp / "model.keras").exists():
        raise ToolError(
            f"rebuilding the QKeras model with hgq2 failed:\n{r.stderr[-3000:]}",
            "check the hgq2 install (`python -c 'import qkeras.qlayers'`) and the layer list above",
        )


def _check_predictions(model_file: Path, pred: Path) -> dict[str, Any] | None:
    if not pred.exists():
        return None
    with np.load(pred, allow_pickle=False) as d:
        if "x" not in d or "y" not in d:
            raise SchemaError(f"{pred}: needs arrays x (inputs) and y (outputs); has {sorted(d.files)}")
        x, y = np.asarray(d["x"], np.float64), np.asarray(d["y"], np.float64)
    got = QuantizedModel(load_model(model_file)).predict(x)
    y = y.reshape(len(y), -1)
    if got.shape != y.shape:
        raise SchemaError(f"{pred}: y has shape {y.shape}, the model gives {got.shape}")
    require_equal(
        got,
        y,
        f"{pred}: the rebuilt model differs from the shipped predictions",
        "check that the file's quantizers are the ones it was trained and evaluated with",
    )
    return {"file": str(pred), "events": int(len(y)), "mismatched": 0, "exact": True}


# --------------------------------------------------------------------------- child process


def _build(tmp: Path) -> None:
    """Child process: rebuild from spec.json + weights.npz with hgq2's qkeras layers; save model.keras."""
    import keras
    from qkeras.qlayers import QActivation, QConv2D, QDense
    from qkeras.quantizers import quantized_bits

    specs = json.loads((tmp / "spec.json").read_text())
    weights = dict(np.load(tmp / "weights.npz"))
    inp = keras.Input(tuple(specs[0]["shape"]), name=specs[0]["name"])
    x = inp
    made = []
    for s in specs[1:]:
        if s["kind"] == "quantizer":
            layer = QActivation(quantized_bits(**s["q"]), name=s["name"])
        elif s["kind"] == "flatten":
            layer = keras.layers.Flatten(name=s["name"])
        elif s["kind"] == "dense":
            layer = QDense(
                s["units"],
                use_bias=s["use_bias"],
                name=s["name"],
                kernel_quantizer=quantized_bits(**s["kq"]),
                **({"bias_quantizer": quantized_bits(**s["bq"])} if s["use_bias"] else {}),
            )
        else:
            layer = QConv2D(
                s["filters"],
                tuple(s["kernel_size"]),
                strides=tuple(s["strides"]),
                padding=s["padding"],
                use_bias=s["use_bias"],
                name=s["name"],
                kernel_quantizer=quantized_bits(**s["kq"]),
                **({"bias_quantizer": quantized_bits(**s["bq"])} if s["use_bias"] else {}),
            )
        x = layer(x)
        made.append((s, layer))
    model = keras.Model(inp, x, name="qkeras_import")
    for s, layer in made:
        if s["kind"] in ("dense", "conv2d"):
            for v in layer.weights:
                key = f"{s['name']}/{v.name.split('/')[-1].split(':')[0]}"
                if key in weights:
                    if tuple(v.shape) != weights[key].shape:
                        raise ValueError(f"{key}: file shape {weights[key].shape}, layer shape {tuple(v.shape)}")
                    v.assign(weights[key])
                elif v.trainable:
                    raise ValueError(f"{key}: no such weight in the file")
    model.save(tmp / "model.keras")


if __name__ == "__main__":
    _build(Path(sys.argv[1]))
