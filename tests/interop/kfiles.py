"""Keras-family test files written by hand, laid out as the writers lay them out (no Keras 2 here):

- `write_keras2(model, dir, ...)`: a Keras 3 model (plain layers) as Keras 2 wrote it: the
  `model.to_json()` config (Keras 2 keys: `batch_input_shape`, inbound nodes as lists, dtype
  strings; a Sequential as Keras 2.0-2.1 wrote it: a bare layer list, the input shape on the
  first layer) and the `save_weights` h5 (`layer_names` / `weight_names` as fixed-length bytes
  like Keras 2.0-2.2 or object strings like tf_keras, `<layer>/<layer>/<name>:0` datasets, empty
  name lists for layers without weights, tf_keras's `top_level_model_weights`), or one full .h5
  (`model_config` + `model_weights`).
- `k2_layer` / `k2_model` / `write_k2_weights`: hand-written Keras 2 configs (QKeras, HGQ v1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np


def _names(names: list[str], strings: str) -> np.ndarray:
    if not names:
        return np.array([], dtype=np.float64)  # what Keras writes for a layer without weights
    if strings == "bytes":
        return np.array([n.encode() for n in names])  # fixed-length |S<n>
    return np.array(names, dtype=h5py.string_dtype())


def write_k2_weights(
    group: Any, layers: list[str], weights: dict[str, dict[str, np.ndarray]], strings: str = "bytes", top_level=False
) -> None:
    """Keras 2's weight layout under `group` (a file or `model_weights`)."""
    names = list(layers) + (["top_level_model_weights"] if top_level else [])
    group.attrs["layer_names"] = _names(names, strings)
    group.attrs["backend"], group.attrs["keras_version"] = "tensorflow", "2.13.1"
    for n in names:
        g = group.create_group(n)
        ws = weights.get(n, {})
        g.attrs["weight_names"] = _names([f"{n}/{w}:0" for w in ws], strings)
        for w, arr in ws.items():
            g.create_dataset(f"{n}/{w}:0", data=arr)


def k2_layer(cls: str, name: str, inbound: str | list[str] | None, **config) -> dict:
    """One layer of a Keras 2 functional config (inbound: one name, several, or None for a Sequential)."""
    layer = {"class_name": cls, "name": name, "config": {"name": name, "trainable": True, "dtype": "float32", **config}}
    if inbound is not None:
        ins = [inbound] if isinstance(inbound, str) else inbound
        layer["inbound_nodes"] = [[[i, 0, 0, {}] for i in ins]] if ins else []
    return layer


def k2_input(name: str, shape: tuple[int, ...]) -> dict:
    return {
        "class_name": "InputLayer",
        "name": name,
        "config": {"batch_input_shape": [None, *shape], "dtype": "float32", "sparse": False, "name": name},
        "inbound_nodes": [],
    }


def k2_model(layers: list[dict], inputs: list[str], outputs: list[str], version: str = "2.13.1") -> dict:
    return {
        "class_name": "Functional",
        "keras_version": version,
        "backend": "tensorflow",
        "config": {
            "name": "model",
            "layers": layers,
            "input_layers": [[n, 0, 0] for n in inputs],
            "output_layers": [[n, 0, 0] for n in outputs],
        },
    }


def write_json_h5(
    d: Path, config: dict, weights: dict[str, dict[str, np.ndarray]], strings="bytes"
) -> tuple[Path, Path]:
    src, wfile = d / "model.json", d / "weights.h5"
    src.write_text(json.dumps(config))
    with h5py.File(wfile, "w") as f:
        write_k2_weights(f, [layer["name"] for layer in config["config"]["layers"]], weights, strings)
    return src, wfile


def write_full_h5(path: Path, config: dict, weights: dict[str, dict[str, np.ndarray]], strings="object") -> Path:
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"], f.attrs["backend"] = config.get("keras_version", "2.13.1"), "tensorflow"
        write_k2_weights(
            f.create_group("model_weights"),
            [layer["name"] for layer in config["config"]["layers"]],
            weights,
            strings,
            True,
        )
    return path


# ----------------------------------------------------------------------------- from a Keras 3 model


def _k2_config(conf: dict) -> dict:
    out = {}
    for k, v in conf.items():
        if k == "dtype":
            v = "float32"
        elif k == "batch_shape":
            k = "batch_input_shape"
        elif isinstance(v, dict) and "module" in v:
            v = {"class_name": v["class_name"], "config": v.get("config", {})}
        out[k] = v
    return out


def _k2_inbound(nodes: list) -> list:
    def refs(a):
        if isinstance(a, dict) and a.get("class_name") == "__keras_tensor__":
            h = a["config"]["keras_history"]
            return [[h[0], h[1], h[2], {}]]
        if isinstance(a, (list, tuple)):
            return [r for x in a for r in refs(x)]
        return []

    return [refs(n["args"]) for n in nodes]


def _k2_weights(model) -> tuple[list[str], dict[str, dict[str, np.ndarray]]]:
    names, weights = [], {}
    for layer in model.layers:
        names.append(layer.name)
        ws = {}
        for v in layer.weights:
            key = v.path.split("/")[-1]
            if layer.__class__.__name__.startswith("DepthwiseConv") and key == "kernel":
                key = "depthwise_kernel"  # Keras 2's name
            ws[key] = np.asarray(v.numpy())
        weights[layer.name] = ws
    return names, weights


def keras2_config(model) -> dict:
    """A Keras 3 model's config as Keras 2's model.to_json() writes it."""
    conf = model.get_config()
    if model.__class__.__name__ == "Sequential":
        body = [ly for ly in conf["layers"] if ly["class_name"] != "InputLayer"]
        first_in = next(ly for ly in conf["layers"] if ly["class_name"] == "InputLayer")
        seq = [{"class_name": ly["class_name"], "config": _k2_config(ly["config"])} for ly in body]
        seq[0]["config"]["batch_input_shape"] = first_in["config"]["batch_shape"]
        return {"class_name": "Sequential", "keras_version": "2.1.3", "backend": "tensorflow", "config": seq}
    layers = [
        {
            "class_name": ly["class_name"],
            "name": ly["name"],
            "config": _k2_config(ly["config"]),
            "inbound_nodes": _k2_inbound(ly["inbound_nodes"]),
        }
        for ly in conf["layers"]
    ]

    def refs(v):
        return [list(v)] if v and isinstance(v[0], str) else [list(r) for r in v]

    return {
        "class_name": "Model",
        "keras_version": "2.2.4",
        "backend": "tensorflow",
        "config": {
            "name": conf["name"],
            "layers": layers,
            "input_layers": refs(conf["input_layers"]),
            "output_layers": refs(conf["output_layers"]),
        },
    }


def write_keras2(model, d: Path, layout: str = "json", strings: str = "bytes") -> tuple[Path, Path | None]:
    """A Keras 3 model written as Keras 2 would: layout "json" (json + save_weights h5) or "h5" (one file)."""
    config = keras2_config(model)
    names, weights = _k2_weights(model)
    if layout == "json":
        src, wfile = d / "model.json", d / "weights.h5"
        src.write_text(json.dumps(config))
        with h5py.File(wfile, "w") as f:
            write_k2_weights(f, names, weights, strings)
        return src, wfile
    path = d / "model.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"], f.attrs["backend"] = "2.13.1", "tensorflow"
        write_k2_weights(f.create_group("model_weights"), names, weights, strings, top_level=True)
    return path, None
