"""Hostile or broken model files, each a few bytes to a few MB on disk, built by hand (onnx.helper,
h5py, zipfile, json): what the importers must refuse with one clear error (exit 3), within seconds
and without allocating what the file only declares. `CASES` maps a name to a builder
`(folder) -> argv tail` (the model file, and `--weights` when it needs one)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from .kfiles import k2_input, k2_layer, k2_model, write_full_h5, write_json_h5

F32 = np.float32
Build = Callable[[Path], list[str]]


def _onnx_model(nodes, inits, x_shape=(1, 4), y_shape=(1, 4), graph_inputs=None, opset: int = 13):
    from onnx import helper

    g = helper.make_graph(
        nodes,
        "g",
        graph_inputs or [helper.make_tensor_value_info("x", 1, list(x_shape))],
        [helper.make_tensor_value_info("y", 1, list(y_shape))],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _save(m, path: Path) -> list[str]:
    import onnx

    onnx.save(m, path)
    return [str(path)]


def _mlp_onnx(w: np.ndarray, layers: int = 2) -> object:
    from onnx import helper, numpy_helper

    nodes, inits, a = [], [], "x"
    for j in range(layers):
        inits.append(numpy_helper.from_array(np.asarray(w, F32), f"w{j}"))
        out = "y" if j == layers - 1 else f"z{j}"
        nodes.append(helper.make_node("MatMul", [a, f"w{j}"], [out]))
        a = out
    return _onnx_model(nodes, inits, (1, w.shape[0]), (1, w.shape[1]))


# ----------------------------------------------------------------------------- resources (item 9)


def onnx_constant_of_shape(d: Path) -> list[str]:
    """164 bytes: a 30000 x 30000 constant (3.6 GB as float32) computed at import."""
    from onnx import helper, numpy_helper

    shape = numpy_helper.from_array(np.array([30000, 30000], np.int64), "s")
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["c"]), helper.make_node("Add", ["x", "c"], ["y"])]
    return _save(_onnx_model(nodes, [shape], (1, 30000), (30000, 30000)), d / "cos.onnx")


def onnx_constant_loop(d: Path) -> list[str]:
    """A constant Loop of 10**15 trips: constant folding would run it."""
    from onnx import TensorProto, helper, numpy_helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [4]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [4]),
        ],
        [numpy_helper.from_array(np.ones(4, F32), "one")],
    )
    inits = [
        numpy_helper.from_array(np.array(10**15, np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "cond"),
        numpy_helper.from_array(np.zeros(4, F32), "v0"),
    ]
    nodes = [
        helper.make_node("Loop", ["trips", "cond", "v0"], ["v"], body=body),
        helper.make_node("Add", ["x", "v"], ["y"]),
    ]
    return _save(_onnx_model(nodes, inits), d / "loop.onnx")


def onnx_sparse_external(d: Path) -> list[str]:
    """An 8 GiB external-data file (sparse: no disk) declared as one float32 weight."""
    from onnx import TensorProto, helper

    n = 2 << 30  # 8 GiB of float32
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, n // 2])
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "w.bin"), ("offset", "0"), ("length", str(4 * n))):
        w.external_data.add(key=k, value=v)
    with open(d / "w.bin", "wb") as f:
        f.truncate(8 << 30)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    return _save(_onnx_model(nodes, [w], (1, 2), (1, n // 2)), d / "ext.onnx")


def _dense_config(n_in: int = 4, units: int = 2) -> dict:
    layers = [k2_input("x", (n_in,)), k2_layer("Dense", "d", "x", units=units, activation="linear", use_bias=False)]
    return k2_model(layers, ["x"], ["d"])


def h5_unwritten_dataset(d: Path) -> list[str]:
    """9 KB: a full Keras .h5 whose kernel is an unwritten 30000 x 30000 gzip dataset (fill value)."""
    path = d / "big.h5"
    write_full_h5(path, _dense_config(30000, 30000), {"d": {}})
    with h5py.File(path, "a") as f:
        g = f["model_weights/d"]
        g.attrs["weight_names"] = np.array([b"d/kernel:0"])
        g.create_dataset("d/kernel:0", shape=(30000, 30000), dtype="f4", chunks=(1000, 1000), compression="gzip")
    return [str(path)]


def keras_zip_bomb(d: Path, size: int = 3 << 30) -> list[str]:
    """A .keras zip whose model.weights.h5 inflates to `size` bytes of zeros (3 GB: 14 MB of zip)."""
    conf = {
        "class_name": "Sequential",
        "config": {
            "name": "s",
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "x"}},
                {"class_name": "Dense", "config": {"name": "d", "units": 2, "use_bias": False}},
            ],
        },
    }
    path = d / "bomb.keras"
    chunk = bytes(64 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("config.json", json.dumps(conf))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.3.3"}))
        with z.open("model.weights.h5", "w", force_zip64=True) as f:
            for _ in range(size // len(chunk)):
                f.write(chunk)
    return [str(path)]


def keras_deep(d: Path, depth: int = 2000) -> list[str]:
    """A 2,000-layer Keras json (Dense 2 -> 2, linear) with its weights."""
    layers, prev = [k2_input("x", (2,))], "x"
    weights = {}
    for j in range(depth):
        layers.append(k2_layer("Dense", f"d{j}", prev, units=2, activation="linear", use_bias=True))
        weights[f"d{j}"] = {"kernel": np.eye(2, dtype=F32), "bias": np.zeros(2, F32)}
        prev = f"d{j}"
    src, w = write_json_h5(d, k2_model(layers, ["x"], [prev]), weights)
    return [str(src), "--weights", str(w)]


def onnx_deep(d: Path) -> list[str]:
    """A 2,000-layer float ONNX MLP (MatMul 4 -> 4)."""
    return _save(_mlp_onnx(np.full((4, 4), 0.5, F32), 2000), d / "deep.onnx")


def onnx_bounds_overflow(d: Path) -> list[str]:
    """Three layers whose interval bounds pass float64's range (weights 1e30: 1e30**3 * 4**3 * 32)."""
    return _save(_mlp_onnx(np.full((4, 4), 1e30, F32), 12), d / "overflow.onnx")


RESOURCES: dict[str, Build] = {
    "onnx_constant_of_shape": onnx_constant_of_shape,
    "onnx_constant_loop": onnx_constant_loop,
    "onnx_sparse_external": onnx_sparse_external,
    "h5_unwritten_dataset": h5_unwritten_dataset,
    "keras_zip_bomb": keras_zip_bomb,
    "keras_deep": keras_deep,
    "onnx_deep": onnx_deep,
}


# ----------------------------------------------------------------------------- bad values (item 12)


def _keras_json(d: Path, weights: dict, input_shape=(4,), **dense) -> list[str]:
    layers = [k2_input("x", input_shape), k2_layer("Dense", "d", "x", units=2, activation="linear", **dense)]
    src, w = write_json_h5(d, k2_model(layers, ["x"], ["d"]), weights)
    return [str(src), "--weights", str(w)]


def keras_nan(d: Path) -> list[str]:
    k = np.ones((4, 2), F32)
    k[1, 1] = np.nan
    return _keras_json(d, {"d": {"kernel": k, "bias": np.zeros(2, F32)}})


def keras_inf(d: Path) -> list[str]:
    return _keras_json(d, {"d": {"kernel": np.ones((4, 2), F32), "bias": np.array([0, np.inf], F32)}})


def keras_negative_shape(d: Path) -> list[str]:
    return _keras_json(d, {"d": {"kernel": np.ones((4, 2), F32), "bias": np.zeros(2, F32)}}, input_shape=(-4,))


def onnx_nan(d: Path) -> list[str]:
    w = np.ones((4, 4), F32)
    w[2, 3] = np.nan
    return _save(_mlp_onnx(w), d / "nan.onnx")


def onnx_inf(d: Path) -> list[str]:
    w = np.ones((4, 4), F32)
    w[0, 0] = -np.inf
    return _save(_mlp_onnx(w), d / "inf.onnx")


def json_nested(d: Path) -> list[str]:
    (d / "deep.json").write_text('{"class_name": "Sequential", "config": ' + "[" * 100_000 + "]" * 100_000 + "}")
    (d / "w.h5").write_bytes(b"")
    return [str(d / "deep.json"), "--weights", str(d / "w.h5")]


def onnx_raw_short(d: Path) -> list[str]:
    m = _mlp_onnx(np.ones((4, 4), F32))
    t = m.graph.initializer[0]
    t.raw_data = t.raw_data[:-4]
    return _save(m, d / "short.onnx")


def onnx_external_short(d: Path) -> list[str]:
    from onnx import TensorProto

    m = _mlp_onnx(np.ones((4, 4), F32))
    t = m.graph.initializer[0]
    (d / "w.bin").write_bytes(t.raw_data[:-8])
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="w.bin")
    return _save(m, d / "extshort.onnx")


def _qkeras(d: Path, kernel_q: str | None = None, act_q: str | None = None) -> list[str]:
    conf: dict = {"units": 2, "use_bias": False, "kernel_quantizer": kernel_q or "quantized_bits(8, 0, alpha=1)"}
    layers = [k2_input("x", (4,)), k2_layer("QDense", "qd", "x", **conf)]
    out = "qd"
    if act_q is not None:
        layers.append(k2_layer("QActivation", "qa", "qd", activation=act_q))
        out = "qa"
    w = np.linspace(-1, 1, 8, dtype=F32).reshape(4, 2)
    src, wf = write_json_h5(d, k2_model(layers, ["x"], [out]), {"qd": {"kernel": w}})
    return [str(src), "--weights", str(wf)]


VALUES: dict[str, Build] = {
    "keras_nan": keras_nan,
    "keras_inf": keras_inf,
    "keras_negative_shape": keras_negative_shape,
    "onnx_nan": onnx_nan,
    "onnx_inf": onnx_inf,
    "json_nested": json_nested,
    "onnx_raw_short": onnx_raw_short,
    "onnx_external_short": onnx_external_short,
    "onnx_bounds_overflow": onnx_bounds_overflow,
    "qkeras_bits_1e5": lambda d: _qkeras(d, "quantized_bits(100000)"),
    "qkeras_bits_1e9": lambda d: _qkeras(d, "quantized_bits(1e9)"),
    "qkeras_integer_minus_1e9": lambda d: _qkeras(d, "quantized_bits(8, -1000000000)"),
    "qkeras_po2_1e9": lambda d: _qkeras(d, "quantized_po2(1e9)"),
    "qkeras_relu_1e6": lambda d: _qkeras(d, act_q="quantized_relu(1e6)"),
    "qkeras_relu_integer_1e6": lambda d: _qkeras(d, act_q="quantized_relu(8, 1000000)"),
}
