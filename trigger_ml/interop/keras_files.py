"""Keras-family model files -> one neutral description (`KModel`): layers, their configs, their
calls and their weights, read with json, zipfile and h5py only (no Keras, no model code executed).

    model = read_keras2_json(Path("model.json"), Path("weights.h5"))  # model.to_json() + save_weights
    model = read_keras2_h5(Path("model.h5"))                          # Keras 2 model.save("model.h5")
    model = read_keras3(Path("model.keras"))                          # Keras 3 model.save("model.keras")

Layouts, as the writers lay them out:
- Keras 2 weights (save_weights, and `model_weights/` of a full .h5): the root attribute
  `layer_names`; one group per layer with the attribute `weight_names` naming its datasets
  (`<layer>/kernel:0`, ...). Keras 2.0-2.2 store both name lists as fixed-length bytes, tf_keras as
  object strings and add an empty `top_level_model_weights` group; Keras 3's legacy `.h5` drops
  the `:0`. A weight is keyed by its last name component without `:0` (`kernel`, `gamma`, ...).
- Keras 2 config: `{"class_name": "Sequential" | "Model" | "Functional", "config": ...}`; a
  Sequential's config is its layer list (Keras 2.0-2.1) or `{"layers": [...]}`; a functional
  layer's `inbound_nodes` is one list per call of `[layer, node_index, tensor_index, kwargs]`.
- Keras 3 `.keras`: a zip of `config.json` (inbound nodes as `{"args": [keras tensors], ...}`,
  each tensor's `keras_history` = [layer, node_index, tensor_index]), `metadata.json` and
  `model.weights.h5`, where each layer's variables are `layers/<key>/vars/0, 1, ...` in the
  layer's creation order and the `vars` group's attribute `name` is the layer's name (older
  Keras 3 files: the key is the snake-case class name with a counter, as keras names it).

Corrupt or truncated files raise one SchemaError naming the file.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.errors import SchemaError
from trigger_ml.interop import limits

Ref = tuple[str, int, int]  # (layer name, call index, output index)
MODEL_CLASSES = ("Sequential", "Model", "Functional")


@dataclass
class KLayer:
    cls: str
    name: str
    config: dict[str, Any]
    calls: list[list[Ref]]  # the input tensors of each call (an InputLayer has none)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    module: str = ""  # Keras 3 / tf_keras `module` (e.g. "qkeras.qlayers"), "" when not written
    registered: str = ""  # `registered_name` of a custom object ("package>Class"), "" when none


@dataclass
class KModel:
    name: str
    layers: list[KLayer]
    inputs: list[Ref]
    outputs: list[Ref]
    keras_version: str
    fmt: str  # "json+h5" | "h5" | "keras"
    files: tuple[Path, ...]

    def layer(self, name: str) -> KLayer:
        return next(layer for layer in self.layers if layer.name == name)

    def classes(self) -> set[str]:
        return {layer.cls for layer in self.layers}


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, (bytes, np.bytes_)) else str(v)


def _names(attr: Any) -> list[str]:
    """An h5 name-list attribute (fixed-length bytes, object strings, or an empty float array)."""
    if attr is None:
        return []
    return [_text(v) for v in np.atleast_1d(np.asarray(attr)) if not isinstance(v, (float, np.floating))]


def _weight_key(name: str) -> str:
    return name.rsplit("/", 1)[-1].split(":", 1)[0]


# ----------------------------------------------------------------------------- configs


def _ref(t: Any, src: Path) -> Ref:
    """A tensor reference: Keras 2 `[name, node, tensor, kwargs?]` or a Keras 3 `__keras_tensor__`."""
    if isinstance(t, dict) and t.get("class_name") == "__keras_tensor__":
        t = t.get("config", {}).get("keras_history")
    if isinstance(t, (list, tuple)) and len(t) >= 3 and isinstance(t[0], str):
        return (t[0], int(t[1]), int(t[2]))
    raise SchemaError(f"{src}: unreadable tensor reference {str(t)[:120]!r} in the model config")


def _flat_tensors(args: Any, src: Path) -> list[Ref]:
    if isinstance(args, dict) and args.get("class_name") == "__keras_tensor__":
        return [_ref(args, src)]
    if isinstance(args, (list, tuple)):
        return [r for a in args for r in _flat_tensors(a, src)]
    return []


def _calls(layer: dict[str, Any], src: Path) -> list[list[Ref]]:
    out = []
    for node in layer.get("inbound_nodes") or []:
        if isinstance(node, dict):  # Keras 3
            out.append(_flat_tensors(node.get("args", []), src))
        elif isinstance(node, list):  # Keras 2: one list of tensor refs per call
            out.append([_ref(t, src) for t in node])
        else:
            raise SchemaError(f"{src}: layer {layer.get('name')!r}: unreadable inbound_nodes")
    return out


def _refs(v: Any, src: Path) -> list[Ref]:
    """input_layers / output_layers: a list of refs, or one ref (Keras 3, single input/output)."""
    if isinstance(v, (list, tuple)) and v and isinstance(v[0], str):
        return [_ref(v, src)]
    return [_ref(t, src) for t in v or []]


def _layer(d: Any, src: Path) -> KLayer:
    if not isinstance(d, dict) or "class_name" not in d or not isinstance(d.get("config", {}), dict):
        raise SchemaError(f"{src}: a layer entry without class_name/config: {str(d)[:120]!r}")
    conf = d.get("config", {})
    name = d.get("name") or conf.get("name")
    if not isinstance(name, str):
        raise SchemaError(f"{src}: a {d['class_name']} layer without a name")
    return KLayer(
        str(d["class_name"]),
        name,
        conf,
        _calls(d, src),
        {},
        str(d.get("module") or ""),
        str(d.get("registered_name") or ""),
    )


def parse_config(config: Any, src: Path) -> tuple[str, list[KLayer], list[Ref], list[Ref]]:
    """A model config (Sequential or functional, Keras 2 or 3) -> (name, layers, inputs, outputs);
    a Sequential becomes a chain with an explicit input layer."""
    if not isinstance(config, dict) or config.get("class_name") not in MODEL_CLASSES:
        cls = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise SchemaError(
            f"{src}: top-level class {cls!r} is not a Keras model (Sequential, Model, Functional)",
            "give the output of model.to_json(), a full Keras 2 .h5 or a Keras 3 .keras file",
        )
    conf = config.get("config")
    raw = conf if isinstance(conf, list) else (conf or {}).get("layers")
    if not isinstance(raw, list) or not raw:
        raise SchemaError(f"{src}: the model config has no layers")
    name = (conf.get("name") if isinstance(conf, dict) else None) or src.stem
    limits.check_layers(src, len(raw))
    layers = [_layer(d, src) for d in raw]
    if config["class_name"] != "Sequential":
        return name, layers, _refs(conf.get("input_layers"), src), _refs(conf.get("output_layers"), src)
    if layers[0].cls != "InputLayer":
        first = layers[0].config
        shape = first.get("batch_input_shape") or first.get("batch_shape")
        if shape is None and isinstance(conf, dict):
            shape = conf.get("build_input_shape")
        if shape is None:
            raise SchemaError(f"{src}: the Sequential model's first layer has no batch_input_shape")
        layers.insert(0, KLayer("InputLayer", f"{layers[0].name}_input", {"batch_input_shape": shape}, []))
    for prev, layer in zip(layers, layers[1:]):
        layer.calls = [[(prev.name, 0, 0)]]
    layers[0].calls = []
    return name, layers, [(layers[0].name, 0, 0)], [(layers[-1].name, 0, 0)]


def _json(text: str | bytes, src: Path) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(
            f"{src}: not valid JSON ({exc})", "give the file as Keras wrote it (it may be truncated)"
        ) from exc
    except RecursionError:
        raise SchemaError(
            f"{src}: the JSON is nested too deeply to be a Keras model config",
            "give the file as Keras wrote it (model.to_json())",
        ) from None


def _read_text(src: Path) -> str:
    """A model json's text, its size checked against the limit before reading."""
    try:
        limits.Budget(src).file(src)
        return src.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{src}: cannot read it ({exc})") from exc


def _array(ds: Any, budget: limits.Budget, what: str) -> np.ndarray:
    """An HDF5 dataset read after its declared size is in the budget; float weights must be finite."""
    shape = tuple(ds.shape or ())
    budget.add(limits.elements(shape) * ds.dtype.itemsize, f"{what} ({list(shape)}, {ds.dtype})")
    a = np.asarray(ds)
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        bad = int(np.sum(~np.isfinite(a)))
        raise SchemaError(
            f"{budget.src}: {what} holds {bad} NaN or infinite value(s) of {a.size}",
            "retrain or re-export the model: a weight must be a finite number",
        )
    return a


# ----------------------------------------------------------------------------- weights


def _h5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise SchemaError(f"{path}: not a readable HDF5 file ({exc})", "give the file as Keras wrote it") from exc


def keras2_weights(group: Any, path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Keras 2 weights by layer name and weight key, from a save_weights file or `model_weights`."""
    if "layer_names" not in group.attrs:
        raise SchemaError(
            f"{path}: no layer_names attribute: not a Keras 2 weights file",
            "write it with Keras 2's model.save_weights('weights.h5') (or give the full model .h5)",
        )
    out: dict[str, dict[str, np.ndarray]] = {}
    budget = limits.Budget(path)
    try:
        for lname in _names(group.attrs["layer_names"]):
            g = group[lname]
            arrays = {}
            for wname in _names(g.attrs.get("weight_names")):
                arrays[_weight_key(wname)] = _array(g[wname], budget, f"weight {wname!r} of layer {lname!r}")
            out[lname] = arrays
    except (KeyError, OSError, ValueError) as exc:
        raise SchemaError(
            f"{path}: a weight named in the file cannot be read ({exc})", "the file may be truncated"
        ) from exc
    return out


def _snake(name: str) -> str:
    """keras.src.utils.naming.to_snake_case."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras3_vars(f: Any, layers: list[KLayer], path: Path) -> dict[str, list[np.ndarray]]:
    """Each layer's variables (in creation order) from a Keras 3 model.weights.h5."""
    out: dict[str, list[np.ndarray]] = {}
    budget = limits.Budget(path)
    if "layers" not in f:
        return out
    by_key: dict[str, str] = {}
    counts: dict[str, int] = {}
    for layer in layers:  # the fallback key: snake-case class name with keras's counter
        base = _snake(layer.cls)
        n = counts.get(base, 0)
        counts[base] = n + 1
        by_key[base if n == 0 else f"{base}_{n}"] = layer.name
    try:
        for key, g in f["layers"].items():
            if "vars" not in g:
                continue
            v = g["vars"]
            lname = _text(v.attrs["name"]) if "name" in v.attrs else by_key.get(key, key)
            out[lname] = [_array(v[k], budget, f"variable {k} of layer {lname!r}") for k in sorted(v.keys(), key=int)]
    except (KeyError, OSError, ValueError) as exc:
        raise SchemaError(f"{path}: the weights cannot be read ({exc})", "the file may be truncated") from exc
    return out


def _keras3_names(layer: KLayer, n: int) -> list[str]:
    """Keras 3 variable names of a layer, in creation order (from its config)."""
    c = layer.config
    bias = ["bias"] if c.get("use_bias", True) else []
    if layer.cls in ("Dense", "Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D"):
        return ["kernel", *bias]
    if layer.cls in ("SeparableConv1D", "SeparableConv2D"):
        return ["depthwise_kernel", "pointwise_kernel", *bias]
    if layer.cls == "BatchNormalization":
        return [
            *(["gamma"] if c.get("scale", True) else []),
            *(["beta"] if c.get("center", True) else []),
            "moving_mean",
            "moving_variance",
        ]
    return [str(j) for j in range(n)]


# ----------------------------------------------------------------------------- entry points


def _attach(layers: list[KLayer], weights: dict[str, dict[str, np.ndarray]]) -> None:
    for layer in layers:
        layer.weights = weights.get(layer.name, {})


def read_keras2_json(src: Path, weights: Path | None) -> KModel:
    """`model.to_json()` + `model.save_weights()` of Keras 2 (or a full .h5 as the weights)."""
    if weights is None:
        raise SchemaError(
            f"{src}: a model json needs its weights file", "pass the .h5 written by model.save_weights() as --weights"
        )
    config = _json(_read_text(src), src)
    name, layers, ins, outs = parse_config(config, src)
    with _h5(weights) as f:
        group = f["model_weights"] if "model_weights" in f and "layer_names" not in f.attrs else f
        _attach(layers, keras2_weights(group, weights))
        version = _text(f.attrs.get("keras_version", ""))
    return KModel(name, layers, ins, outs, str(config.get("keras_version") or version), "json+h5", (src, weights))


def read_keras2_h5(src: Path) -> KModel:
    """A full Keras 2 `model.save("model.h5")`: the `model_config` attribute and `model_weights`."""
    with _h5(src) as f:
        if "model_config" not in f.attrs or "model_weights" not in f:
            raise SchemaError(
                f"{src}: no model_config attribute or model_weights group: not a full Keras model file",
                "save it with model.save('model.h5'), or give the model json with this file as --weights",
            )
        config = _json(_text(f.attrs["model_config"]), src)
        name, layers, ins, outs = parse_config(config, src)
        _attach(layers, keras2_weights(f["model_weights"], src))
        version = _text(f.attrs.get("keras_version", "")) or str(config.get("keras_version") or "")
    return KModel(name, layers, ins, outs, version, "h5", (src,))


def read_keras3(src: Path) -> KModel:
    """A Keras 3 `.keras` file (config.json and model.weights.h5 read from the zip)."""
    import io

    try:
        with zipfile.ZipFile(src) as z:
            names = set(z.namelist())
            if "config.json" not in names:
                raise SchemaError(f"{src}: no config.json inside: not a Keras 3 .keras file")
            _zip_budget(z, src, ("config.json", "metadata.json", "model.weights.h5"))
            config = _json(z.read("config.json"), src)
            meta = _json(z.read("metadata.json"), src) if "metadata.json" in names else {}
            blob = z.read("model.weights.h5") if "model.weights.h5" in names else None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise SchemaError(
            f"{src}: not a readable .keras (zip) file ({exc})", "give the file as Keras wrote it"
        ) from exc
    name, layers, ins, outs = parse_config(config, src)
    variables: dict[str, list[np.ndarray]] = {}
    if blob is not None:
        import h5py

        try:
            with h5py.File(io.BytesIO(blob), "r") as f:
                variables = _keras3_vars(f, layers, src)
        except OSError as exc:
            raise SchemaError(f"{src}: model.weights.h5 is not readable ({exc})") from exc
    for layer in layers:
        arrays = variables.get(layer.name, [])
        layer.weights = dict(zip(_keras3_names(layer, len(arrays)), arrays))  # a missing one is reported by its layer
    return KModel(name, layers, ins, outs, str(meta.get("keras_version", "3")), "keras", (src,))


def _zip_budget(z: zipfile.ZipFile, src: Path, names: tuple[str, ...]) -> None:
    """The entries that will be read, by their declared (uncompressed) sizes, before extracting
    any (zipfile never inflates an entry past its declared size)."""
    budget = limits.Budget(src)
    for info in z.infolist():
        if info.filename in names:
            budget.add(info.file_size, f"zip entry {info.filename!r} (inflates to {info.file_size:,} bytes)")


def sniff_config(src: Path) -> dict[str, Any]:
    """The model config of a .json / full .h5 / .keras file (for the file kind), SchemaError if unreadable."""
    suffix = src.suffix.lower()
    if suffix == ".json":
        return _json(_read_text(src), src)
    if suffix == ".keras":
        try:
            with zipfile.ZipFile(src) as z:
                _zip_budget(z, src, ("config.json",))
                return _json(z.read("config.json"), src)
        except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
            raise SchemaError(f"{src}: not a readable Keras 3 .keras file ({exc})") from exc
    with _h5(src) as f:
        if "model_config" not in f.attrs:
            raise SchemaError(
                f"{src}: no model_config attribute: a weights-only file, not a model",
                "give the model json and pass this file as --weights",
            )
        return _json(_text(f.attrs["model_config"]), src)


def layer_classes(config: Any) -> list[tuple[str, str]]:
    """(class name, module) of every top-level layer of a model config ([] when it has none)."""
    conf = config.get("config") if isinstance(config, dict) else None
    raw = conf if isinstance(conf, list) else (conf or {}).get("layers") if isinstance(conf, dict) else None
    return [(str(d.get("class_name")), str(d.get("module") or "")) for d in raw or [] if isinstance(d, dict)]
