"""The Keras-family front ends (`interop.keras_front`): the peer models against their frameworks'
own outputs, and plain Keras layers against Keras itself (Keras 3 computes the reference; the
same model is read from a .keras file and from Keras 2 json + h5 / full .h5 written as Keras 2
lays them out, tests/interop/kfiles.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trigger_ml.interop.keras_front import file_kind, read_keras2_h5, read_keras2_json, read_keras3, read_model

from .kfiles import write_keras2

PEERS = Path(__file__).resolve().parents[3] / "shared" / "peer-models"
if not PEERS.exists():
    PEERS = Path("/work/shared/peer-models")

# name -> (model file, weights file, kind, exact)
PEER_MODELS = {
    "KERAS_1layer": ("KERAS_1layer.json", "KERAS_1layer_weights.h5", "keras", False),
    "KERAS_3layer_batch_norm": ("KERAS_3layer_batch_norm.json", "KERAS_3layer_batch_norm_weights.h5", "keras", False),
    "KERAS_conv1d": ("KERAS_conv1d.json", "KERAS_conv1d_weights.h5", "keras", False),
    "jetTagger_Conv2D_Small_NoBatchNorm": (
        "jetTagger_Conv2D_Small_NoBatchNorm.json",
        "jetTagger_Conv2D_Small_NoBatchNorm_weights.h5",
        "keras",
        False,
    ),
    "hgq_mnist_homogeneous": ("hgq_mnist_homogeneous.h5", None, "hgq1", True),
    "qk_mlp_bn_softmax": ("qk_mlp_bn_softmax.json", "qk_mlp_bn_softmax_weights.h5", "qkeras", False),
    "qk_cnn_pool": ("qk_cnn_pool.json", "qk_cnn_pool_weights.h5", "qkeras", False),
    "qk_po2_relu": ("qk_po2_relu.json", "qk_po2_relu_weights.h5", "qkeras", True),
}


def evaluate(graph, x: np.ndarray, chunk: int = 100) -> np.ndarray:
    return np.concatenate(
        [graph.evaluate(x[i : i + chunk])[0].reshape(len(x[i : i + chunk]), -1) for i in range(0, len(x), chunk)]
    )


def close(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """(max |error| / range of the reference, argmax agreement)."""
    want = want.reshape(len(want), -1)
    err = float(np.abs(got - want).max() / (np.ptp(want) or 1.0))
    if want.shape[1] > 1:
        agree = float(np.mean(got.argmax(1) == want.argmax(1)))
    else:
        mid = 0.5 * (want.max() + want.min())
        agree = float(np.mean((got > mid) == (want > mid)))
    return err, agree


@pytest.mark.skipif(not PEERS.exists(), reason="shared/peer-models not present")
@pytest.mark.parametrize("name", list(PEER_MODELS))
def test_peer_model_reproduces_its_framework(name):
    model, weights, kind, exact = PEER_MODELS[name]
    src = PEERS / model
    assert file_kind(src) == kind
    graph = read_model(src, PEERS / weights if weights else None)
    ref = np.load(PEERS / f"{name}.reference.npz")
    x, y = ref["x"], ref["y"]
    got = evaluate(graph, x)
    if exact:
        np.testing.assert_array_equal(got, y.reshape(len(y), -1))
    else:
        err, agree = close(got, y)
        assert err <= 1e-5 and agree == 1.0, (err, agree)


@pytest.mark.skipif(not PEERS.exists(), reason="shared/peer-models not present")
def test_peer_graphs_say_what_they_read():
    g = read_model(PEERS / "qk_po2_relu.json", PEERS / "qk_po2_relu_weights.h5")
    assert g.inputs[0].q is not None and str(g.inputs[0].q.uniform()) == "fixed<10,3,RND_CONV,SAT>"
    assert [n.op for n in g.nodes] == ["dense", "relu", "quant", "dense"]
    assert "QKeras 2.21.0 json+h5" in g.source
    w = g.node("fc1").weights["kernel"]
    assert set(np.unique(np.abs(w))) <= {2.0**-e for e in range(9)}  # quantized_po2(4, max 1): 2**[-8, 0]
    g = read_model(PEERS / "qk_mlp_bn_softmax.json", PEERS / "qk_mlp_bn_softmax_weights.h5")
    assert g.inputs[0].q is None and any("no input quantizer" in n for n in g.notes)  # --input-format decides
    assert [n.op for n in g.nodes] == ["dense", "scale_shift", "quant", "dense", "quant", "dense", "softmax"]
    g = read_model(PEERS / "hgq_mnist_homogeneous.h5")
    assert str(g.inputs[0].q.uniform()) == "ufixed<5,1,RND,WRAP>"  # RND from the quantizer, not `overrides`
    assert [str(n.attrs["q"].uniform()) for n in g.nodes if n.op == "quant"][:2] == ["fixed<7,3>", "ufixed<6,2>"]
    g = read_model(PEERS / "KERAS_conv1d.json", PEERS / "KERAS_conv1d_weights.h5")
    assert g.node("conv1_relu").attrs["pads"] == ((19, 20),)  # 'same', k = 40: lo = 39 // 2


@pytest.mark.skipif(not PEERS.exists(), reason="shared/peer-models not present")
def test_conv1d_peer_evaluates_fast():
    import time

    graph = read_model(PEERS / "KERAS_conv1d.json", PEERS / "KERAS_conv1d_weights.h5")
    x = np.load(PEERS / "KERAS_conv1d.reference.npz")["x"]
    t = time.perf_counter()
    graph.evaluate(x)
    assert time.perf_counter() - t < 30  # 3 x 40-tap convs + 3200 x 50 dense on 500 events (~2 s)


# ----------------------------------------------------------------------------- plain layers vs Keras


def _set_random_weights(model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        new = []
        for v, w in zip(layer.weights, ws):
            if "variance" in v.path:
                new.append(rng.uniform(0.2, 2.0, w.shape).astype(np.float32))
            else:
                new.append(rng.normal(0, 0.5, w.shape).astype(np.float32))
        layer.set_weights(new)


def model_2d():
    import keras
    from keras import layers as L

    a, b = keras.Input((9, 8, 3), name="img"), keras.Input((6,), name="feat")
    x = L.Conv2D(4, 3, strides=2, padding="same", name="c1")(a)  # 9 -> 5: pads (1, 1); 8 -> 4: pads (0, 1)
    x = L.BatchNormalization(epsilon=1e-3, name="bn")(x)
    x = L.ReLU(max_value=1.5, name="relu6ish")(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="tanh", name="dw")(x)
    p = L.MaxPooling2D(2, strides=1, padding="same", name="mp")(x)
    q = L.AveragePooling2D(3, strides=2, padding="same", name="ap")(x)
    q = L.ZeroPadding2D(((0, 1), (1, 1)), name="zp")(q)
    q = L.Conv2D(8, 2, groups=2, padding="valid", activation="relu", use_bias=False, name="grouped")(q)
    g = L.GlobalAveragePooling2D(name="gap")(p)
    h = L.GlobalMaxPooling2D(name="gmp")(q)
    d = L.Dense(8, activation="sigmoid", name="d")(b)
    s = L.Add(name="add")([g, d])
    s = L.Subtract(name="sub")([s, h])
    m = L.Multiply(name="mul")([s, d])
    m = L.Maximum(name="max")([m, L.Average(name="avg")([s, h])])
    z = L.Concatenate(name="cat")([m, d, b])
    z = L.Dropout(0.3, name="drop")(z)
    z = L.Dense(5, name="logits")(z)
    out = L.Activation("softmax", name="softmax")(z)
    return keras.Model([a, b], out, name="branchy")


def model_1d():
    import keras
    from keras import layers as L

    a = keras.Input((12, 3), name="seq")
    x = L.Conv1D(4, 4, padding="same", activation="relu", name="c_same")(a)  # k = 4: pads (1, 2)
    x = L.Conv1D(4, 3, padding="causal", name="c_causal")(x)
    x = L.ZeroPadding1D((2, 1), name="zp")(x)
    x = L.Conv1D(5, 3, strides=2, padding="valid", activation="tanh", name="c_stride")(x)
    y = L.MaxPooling1D(2, name="mp")(x)
    z = L.AveragePooling1D(3, strides=1, padding="same", name="ap")(x)
    z = L.GlobalMaxPooling1D(name="gmp")(z)
    y = L.Permute((2, 1), name="perm")(y)
    y = L.Reshape((-1,), name="flatish")(y)
    y = L.Concatenate(axis=-1, name="cat")([y, z])
    y = L.Dense(3, activation="sigmoid", name="out")(y)
    return keras.Model(a, y, name="seq1d")


def model_seq():
    import keras
    from keras import layers as L

    return keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            L.Conv2D(3, 2, activation="relu", name="conv"),
            L.MaxPooling2D(2, name="pool"),
            L.Flatten(name="flat"),
            L.Dense(7, name="fc"),
            L.BatchNormalization(name="bn"),
            L.Activation("relu", name="act"),
            L.Dropout(0.5, name="dropout"),
            L.Dense(4, activation="softmax", name="out"),
        ],
        name="seq",
    )


MODELS = {"2d": model_2d, "1d": model_1d, "sequential": model_seq}


@pytest.fixture(scope="module")
def keras_models(tmp_path_factory):
    """Each test model with random weights, its Keras outputs on random inputs, and a .keras file."""
    out = {}
    for name, make in MODELS.items():
        d = tmp_path_factory.mktemp(name)
        model = make()
        _set_random_weights(model, seed=len(name))
        rng = np.random.default_rng(7)
        xs = [rng.uniform(-2, 2, (64, *inp.shape[1:])).astype(np.float32) for inp in model.inputs]
        y = np.asarray(model.predict(xs if len(xs) > 1 else xs[0], verbose=0), np.float64)
        model.save(d / "model.keras")
        out[name] = (model, d, xs, y)
    return out


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("layout", ["keras3", "keras3-legacy-h5", "json-bytes", "json-object", "h5-object", "h5-bytes"])
def test_plain_layers_reproduce_keras(keras_models, tmp_path, name, layout):
    model, d, xs, y = keras_models[name]
    if layout == "keras3":
        graph = read_keras3(d / "model.keras")
        assert file_kind(d / "model.keras") == "keras3"
    elif layout == "keras3-legacy-h5":  # Keras 3's model.save("m.h5"): Keras 3 config, Keras 2 weight layout
        model.save(tmp_path / "m.h5")
        graph = read_keras2_h5(tmp_path / "m.h5")
        assert file_kind(tmp_path / "m.h5") == "keras"
    else:
        kind, strings = layout.split("-")
        src, weights = write_keras2(model, tmp_path, "json" if kind == "json" else "h5", strings)
        graph = read_keras2_json(src, weights) if weights else read_keras2_h5(src)
        assert file_kind(src) == "keras"
    got = np.concatenate([o.reshape(len(y), -1) for o in graph.evaluate(*[x.astype(np.float64) for x in xs])], axis=1)
    err, agree = close(got, y)
    assert err <= 1e-5 and agree == 1.0, (err, agree)
    assert [i.q for i in graph.inputs] == [None] * len(xs)  # float inputs: the policy's --input-format


def test_same_padding_and_depthwise_layout(keras_models):
    graph = read_keras3(keras_models["2d"][1] / "model.keras")
    assert graph.node("c1").attrs["pads"] == ((1, 1), (0, 1))  # 9 -> 5 at stride 2: total 2; 8 -> 4: total 1
    dw = graph.node("dw")
    assert dw.attrs["groups"] == 4 and dw.weights["kernel"].shape == (3, 3, 1, 8)
    assert graph.node("ap").attrs["count_pad"] is False  # TF averages over the real elements only
    assert "drop" not in {n.name for n in graph.nodes}  # Dropout is the identity at inference
    bn = graph.node("bn")
    model = keras_models["2d"][0]
    gamma, beta, mean, var = (np.asarray(w, np.float64) for w in model.get_layer("bn").get_weights())
    np.testing.assert_array_equal(bn.weights["scale"], gamma / np.sqrt(var + 1e-3))
    np.testing.assert_array_equal(bn.weights["shift"], beta - mean * (gamma / np.sqrt(var + 1e-3)))


def test_layer_names_that_collide_with_extra_nodes(tmp_path):
    """A Dense "d" with a relu writes "d/relu"; a layer the file itself names "d/relu" keeps its own."""
    from .kfiles import k2_input, k2_layer, k2_model, write_json_h5

    layers = [k2_input("x", (2,)), k2_layer("Dense", "d", "x", units=2, activation="relu", use_bias=False)]
    layers.append(k2_layer("Activation", "d/relu", "d", activation="tanh"))
    w = {"d": {"kernel": np.eye(2, dtype=np.float32)}}
    g = read_keras2_json(*write_json_h5(tmp_path, k2_model(layers, ["x"], ["d/relu"]), w))
    assert [n.name for n in g.nodes] == ["d", "d/relu", "d/relu_1"]
    np.testing.assert_array_equal(g.evaluate(np.array([[-1.0, 0.5]]))[0], np.tanh([[0.0, 0.5]]))


def test_shared_layer_called_twice(tmp_path):
    import keras
    from keras import layers as L

    a = keras.Input((4,), name="a")
    shared = L.Dense(4, activation="relu", name="shared")
    y = shared(shared(a))
    model = keras.Model(a, L.Add(name="sum")([y, a]))
    _set_random_weights(model, 3)
    x = np.random.default_rng(0).uniform(-1, 1, (32, 4)).astype(np.float32)
    want = np.asarray(model.predict(x, verbose=0), np.float64)
    model.save(tmp_path / "m.keras")
    for graph in (read_keras3(tmp_path / "m.keras"), read_keras2_json(*write_keras2(model, tmp_path, "json", "bytes"))):
        assert {"shared", "shared#1"} <= {n.name for n in graph.nodes}
        np.testing.assert_allclose(graph.evaluate(x)[0], want, rtol=1e-5, atol=1e-6)
