"""Bad Keras-family input: one clear error each, nothing run from the file, nothing written; and the
importer adapter (`keras_front.import_keras`) around the lowering."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from trigger_ml.errors import SchemaError, UnsupportedError
from trigger_ml.interop import file_kind, import_model
from trigger_ml.interop.keras_front import read_keras2_h5, read_keras2_json, read_keras3, read_model

from .kfiles import k2_input, k2_layer, k2_model, write_full_h5, write_json_h5

F32 = np.float32


def mlp(units=(4, 3)):
    layers = [k2_input("x", (5,)), k2_layer("Dense", "d1", "x", units=units[0], activation="relu", use_bias=True)]
    layers.append(k2_layer("Dense", "d2", "d1", units=units[1], activation="softmax", use_bias=True))
    weights = {
        "d1": {"kernel": np.ones((5, units[0]), F32), "bias": np.zeros(units[0], F32)},
        "d2": {"kernel": np.ones((units[0], units[1]), F32), "bias": np.zeros(units[1], F32)},
    }
    return k2_model(layers, ["x"], ["d2"], "2.4.0"), weights


def test_lambda_and_custom_layers_are_refused_with_everything_else(tmp_path):
    config, weights = mlp()
    layers = config["config"]["layers"]
    evil = "__import__('pathlib').Path('" + str(tmp_path / "ran") + "').write_text('x')"
    layers.insert(
        2, k2_layer("Lambda", "lam", "d1", function=[evil, None, None], function_type="lambda", module="__main__")
    )
    layers.insert(3, {**k2_layer("MyScaler", "custom", "lam", factor=2), "registered_name": "mypkg>MyScaler"})
    layers.insert(4, k2_layer("LeakyReLU", "leaky", "custom", negative_slope=0.1))
    layers[5]["inbound_nodes"] = [[["leaky", 0, 0, {}]]]
    src, w = write_json_h5(tmp_path, config, weights)
    with pytest.raises(UnsupportedError) as e:
        read_keras2_json(src, w)
    msg = str(e.value)
    assert "3 unsupported" in msg and "'lam' (Lambda)" in msg and "never runs" in msg
    assert "'custom' (MyScaler)" in msg and "'leaky' (LeakyReLU)" in msg and "nearest supported: ReLU" in msg
    assert not (tmp_path / "ran").exists()


def test_keras3_lambda_is_refused_without_running_it(tmp_path):
    import keras

    marker = tmp_path / "ran"
    inp = keras.Input((3,))
    out = keras.layers.Lambda(lambda t: t * 2, name="lam")(keras.layers.Dense(2, name="d")(inp))
    keras.Model(inp, out).save(tmp_path / "m.keras")
    with pytest.raises(UnsupportedError, match="'lam' \\(Lambda\\)"):
        read_keras3(tmp_path / "m.keras")
    assert not marker.exists()


def test_reading_imports_no_framework(tmp_path):
    """The readers need json, zipfile and h5py only: no keras, tensorflow or qkeras import."""
    config, weights = mlp()
    src, w = write_json_h5(tmp_path, config, weights)
    code = (
        "import sys; from pathlib import Path; from trigger_ml.interop.keras_front import read_model;"
        f"read_model(Path({str(src)!r}), Path({str(w)!r}));"
        "bad = [m for m in ('keras', 'tensorflow', 'qkeras', 'hgq', 'tf_keras') if m in sys.modules]; assert not bad, bad"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.parametrize("suffix", [".h5", ".json", ".keras"])
def test_corrupt_or_truncated_files_are_one_schema_error_naming_the_file(tmp_path, suffix):
    config, weights = mlp()
    if suffix == ".json":
        src, w = write_json_h5(tmp_path, config, weights)
        src.write_text(src.read_text()[:200])  # truncated
    elif suffix == ".h5":
        src, w = write_full_h5(tmp_path / "m.h5", config, weights), None
        data = src.read_bytes()
        src.write_bytes(data[: len(data) // 3])
    else:
        import keras

        m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        m.save(tmp_path / "m.keras")
        data = (tmp_path / "m.keras").read_bytes()
        src, w = tmp_path / "m.keras", None
        src.write_bytes(data[: len(data) // 2])
    with pytest.raises(SchemaError) as e:
        read_model(src, w)
    assert str(src) in str(e.value)
    with pytest.raises(SchemaError):
        import_model(src, tmp_path / "run", weights=w)
    assert not (tmp_path / "run").exists()


def test_garbage_weights_file(tmp_path):
    config, weights = mlp()
    src, w = write_json_h5(tmp_path, config, weights)
    w.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(SchemaError, match="weights.h5"):
        read_keras2_json(src, w)


def test_wrong_and_missing_weights_are_schema_errors_listing_each(tmp_path):
    config, weights = mlp()
    weights["d1"]["kernel"] = np.ones((5, 7), F32)  # the config says 4 units
    del weights["d2"]["bias"]
    src, w = write_json_h5(tmp_path, config, weights)
    with pytest.raises(SchemaError) as e:
        read_keras2_json(src, w)
    msg = str(e.value)
    assert "'d1' (Dense): kernel has shape (5, 7) in the weights file, the layer needs (5, 4)" in msg
    assert "'d2' (Dense): the weights file has no bias" in msg and "2 problem(s)" in msg


def test_wrong_shape_is_caught_in_a_keras3_file(tmp_path):
    import keras

    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    m.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        files = {n: z.read(n) for n in z.namelist()}
    cfg = json.loads(files["config.json"])
    next(ly for ly in cfg["config"]["layers"] if ly["class_name"] == "Dense")["config"]["units"] = 5
    files["config.json"] = json.dumps(cfg).encode()
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    with pytest.raises(SchemaError, match=r"kernel has shape \(3, 2\) in the weights file, the layer needs \(3, 5\)"):
        read_keras3(tmp_path / "bad.keras")


def test_wrong_file_roles(tmp_path):
    config, weights = mlp()
    src, w = write_json_h5(tmp_path, config, weights)
    with pytest.raises(SchemaError, match="needs its weights"):
        read_keras2_json(src, None)
    with pytest.raises(SchemaError, match="weights-only file"):
        file_kind(w)  # a save_weights file given as the model
    with pytest.raises(SchemaError, match="not a full Keras model"):
        read_keras2_h5(w)
    full = write_full_h5(tmp_path / "full.h5", config, weights)
    with pytest.raises(SchemaError, match="--weights"):
        read_model(full, w)
    with pytest.raises(SchemaError, match="not a Keras model"):
        (tmp_path / "x.json").write_text(json.dumps({"class_name": "Dense", "config": {}}))
        read_keras2_json(tmp_path / "x.json", w)


def test_dangling_input_and_free_dimensions(tmp_path):
    config, weights = mlp()
    config["config"]["layers"][2]["inbound_nodes"] = [[["nowhere", 0, 0, {}]]]
    config["config"]["layers"][0]["config"]["batch_input_shape"] = [None, None]
    src, w = write_json_h5(tmp_path, config, weights)
    with pytest.raises(SchemaError) as e:
        read_keras2_json(src, w)
    assert "'nowhere' is produced by no layer" in str(e.value) and "free dimension" in str(e.value)


def test_unsupported_options_of_supported_layers(tmp_path):
    layers = [
        k2_input("x", (8, 8, 2)),
        k2_layer("Conv2D", "c", "x", filters=2, kernel_size=[3, 3], strides=[1, 1], padding="valid", dilation_rate=[2, 2],
                 data_format="channels_first", activation="swish", use_bias=False),
        k2_layer("BatchNormalization", "bn", "c", axis=1, epsilon=1e-3, center=True, scale=True),
    ]  # fmt: skip
    bn = {k: np.ones(2, F32) for k in ("gamma", "beta", "moving_mean", "moving_variance")}
    src, w = write_json_h5(
        tmp_path, k2_model(layers, ["x"], ["bn"]), {"c": {"kernel": np.ones((3, 3, 2, 2), F32)}, "bn": bn}
    )
    with pytest.raises(UnsupportedError) as e:
        read_keras2_json(src, w)
    msg = str(e.value)
    for needle in ("dilation_rate [2, 2]", "channels_first", "'swish'"):
        assert needle in msg, msg


# ----------------------------------------------------------------------------- the adapter


def test_import_adapter_hands_the_graph_and_policy_to_import_graph(tmp_path, monkeypatch):
    from trigger_ml.interop import keras_front

    config, weights = mlp()
    src, w = write_json_h5(tmp_path, config, weights)
    calls = []

    def import_graph(graph, out, **kw):
        calls.append((graph, out, kw))
        return {"kind": "keras"}

    monkeypatch.setattr(keras_front, "import_graph", import_graph)
    assert import_model(src, tmp_path / "run", weights=w, input_format="fixed<12,4>") == {"kind": "keras"}
    ((graph, out, kw),) = calls
    assert [n.op for n in graph.nodes] == ["dense", "relu", "dense", "softmax"] and out == tmp_path / "run"
    assert kw["foreign_files"] == [src, w]
    assert str(kw["policy_options"].input_fixed()) == "fixed<12,4,RND,SAT>"


def test_a_keras3_file_of_third_party_layers_is_refused(tmp_path):
    """An hgq2 model (its QDense shares QKeras's class name) is not read as QKeras: its module says hgq."""
    import keras
    from hgq.layers import QDense

    inp = keras.Input((4,))
    keras.Model(inp, QDense(3, name="qd")(inp)).save(tmp_path / "h.keras")
    with pytest.raises(UnsupportedError) as e:
        read_keras3(tmp_path / "h.keras")
    assert "'qd' (QDense): a class from 'hgq" in str(e.value) and "compiles hgq2 models directly" in str(e.value)
