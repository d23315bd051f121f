"""The ONNX-family front end: `onnx_front.read` -> ir.Graph, checked against the file's own framework
(onnxruntime for float files, within 1e-5 of the output range; qonnx's executor for QONNX files,
exactly) on the peer models and on graphs built per op family (`front_models`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from . import front_models as FM

onnx = pytest.importorskip("onnx")
pytest.importorskip("qonnx")
pytest.importorskip("onnxruntime")

PEERS = Path("/work/shared/peer-models")
FLOAT_PEERS = ["two_layer_keras", "two_layer_pytorch", "conv1d_small_keras", "conv2d_small_mp_keras"]
needs_peers = pytest.mark.skipif(not PEERS.is_dir(), reason="shared peer models not present")


def _evaluate(front, x: np.ndarray, keep: bool = False):
    from trigger_ml.interop.onnx_front import to_channels_last

    g = front.graph
    out = g.evaluate(to_channels_last(x, g.inputs[0].layout), keep=keep)
    if keep:
        return out
    return np.concatenate([y.reshape(len(x), -1) for y in out], axis=1)


def _close(y: np.ndarray, ref: np.ndarray, tol: float = 1e-5) -> None:
    span = max(float(np.ptp(ref)), 1e-12)
    assert float(np.max(np.abs(y - ref))) <= tol * span, float(np.max(np.abs(y - ref))) / span
    if ref.shape[1] > 1:
        assert np.mean(y.argmax(1) == ref.argmax(1)) == 1.0


def _executor(model):
    from trigger_ml.interop.reference import QonnxExecutor

    return QonnxExecutor(model)


def _ort(model):
    from trigger_ml.interop.reference import OrtSession

    return OrtSession(model)


# ----------------------------------------------------------------------------- peer models


@needs_peers
@pytest.mark.parametrize("name", FLOAT_PEERS)
def test_float_peer_models_match_onnxruntime(name):
    from trigger_ml.interop.onnx_front import read

    front = read(PEERS / f"{name}.onnx")
    ref = np.load(PEERS / f"{name}.reference.npz")
    assert front.kind == "onnx"
    y = _evaluate(front, ref["x"])
    _close(y, ref["y"].reshape(len(y), -1))
    np.testing.assert_array_equal(_ort(front.model).predict(ref["x"]), ref["y"].reshape(len(y), -1))


@needs_peers
def test_keras_exports_need_no_transpose_and_keep_their_nhwc_input():
    from trigger_ml.interop.onnx_front import read

    front = read(PEERS / "conv2d_small_mp_keras.onnx")
    g = front.graph
    assert g.inputs[0].shape == (25, 25, 1) and g.inputs[0].layout == ""
    assert [n.op for n in g.nodes if n.op in ("transpose", "reshape")] == []
    assert any("axis=0" in n for n in g.notes)


@needs_peers
def test_tfc_int_is_exact_against_its_reference_and_qonnx_on_fuzzed_inputs():
    from trigger_ml.interop.onnx_front import read

    front = read(PEERS / "TFC_1W2A_int.onnx")
    ref = np.load(PEERS / "TFC_1W2A_int.reference.npz")
    assert front.kind == "qonnx"
    np.testing.assert_array_equal(_evaluate(front, ref["x"]), ref["y"])
    rng = np.random.default_rng(0)
    x = np.round(rng.uniform(-0.25, 1.25, (300, 1, 28, 28)) * 256) / 256
    x[:, :, ::3] = rng.choice([0.25, 0.75], x[:, :, ::3].shape)  # 2x - 1 = -0.5, 0.5: ties of ROUND
    np.testing.assert_array_equal(_evaluate(front, x), _executor(front.model).predict(x))
    # BN -> Quant became thresholds on the integer accumulators, proven on every reachable integer
    fused = [f for f in front.facts.values() if f.get("reference") == "qonnx executor"]
    assert len(fused) == 3 and all(f["float32_decided"] == 0 for f in fused)
    assert all(f["float64_margin"] >= 1e-5 for f in fused)  # and the float64 levels are the exact ones
    assert fused[0]["inputs"] == 2 * 784 + 1
    assert not any(n.op == "scale_shift" and n.attrs.get("float") for n in front.graph.nodes)


@needs_peers
def test_tfc_is_exact_up_to_its_float_head():
    from qonnx.core.onnx_exec import execute_onnx

    from trigger_ml.interop.onnx_front import read
    from trigger_ml.interop.reference import _with_batch

    front = read(PEERS / "TFC_1W2A.onnx")
    ref = np.load(PEERS / "TFC_1W2A.reference.npz")
    x = ref["x"][:50]
    mw = _with_batch(front.model, len(x))
    ctx = execute_onnx(mw, {"0": x.astype(np.float32)}, return_full_exec_context=True)
    env = _evaluate(front, x, keep=True)
    before_head = "74"  # the last MatMul's output, integers
    assert front.graph.producers()[before_head].op == "dense"
    np.testing.assert_array_equal(env[before_head], ctx[before_head])
    _close(_evaluate(front, ref["x"]), ref["y"])


# ----------------------------------------------------------------------------- float graphs


@pytest.mark.parametrize(
    "build",
    [FM.float_cnn_nchw, FM.float_conv1d_ncw, FM.float_reshape_chain, FM.float_opset7, FM.float_two_tensor_ops],
    ids=lambda b: b.__name__,
)
def test_float_graphs_match_onnxruntime(build):
    from trigger_ml.interop.onnx_front import read

    m, x = build()
    front = read(m)
    _close(_evaluate(front, x), _ort(m).predict(x))


def test_nchw_cnn_is_channels_last_inside_and_its_flatten_transpose_is_folded():
    from trigger_ml.interop.onnx_front import read

    m, x = FM.float_cnn_nchw()
    g = read(m).graph
    assert g.inputs[0].layout == "NCHW" and g.inputs[0].shape == (11, 10, 3)
    assert not any(n.op == "transpose" for n in g.nodes)
    from trigger_ml.interop.onnx_front import to_channels_last, to_file_layout

    np.testing.assert_array_equal(to_file_layout(to_channels_last(x, "NCHW"), "NCHW"), x)
    dw = [n for n in g.nodes if n.op == "conv"][1]
    assert dw.attrs["groups"] == 4 and dw.weights["kernel"].shape == (3, 3, 1, 4)
    assert [n for n in g.nodes if n.op == "conv"][0].attrs["pads"] == ((0, 2), (1, 1))


def test_old_opsets_are_converted_and_said_so():
    from trigger_ml.interop.onnx_front import read

    m, _ = FM.float_opset7()
    front = read(m)
    assert any("converted to 13" in n for n in front.graph.notes)
    assert m.opset_import[0].version == 7  # the caller's model is not changed


def test_new_ir_and_opset_are_capped():
    from trigger_ml.interop.onnx_front import read

    m, x = FM.float_conv1d_ncw()
    m.ir_version, m.opset_import[0].version = 11, 22
    front = read(m)
    assert front.model.ir_version == 10 and front.model.opset_import[0].version == 21
    _close(_evaluate(front, x), _ort(front.model).predict(x))


# ----------------------------------------------------------------------------- QONNX graphs


@pytest.mark.parametrize(
    "build",
    [
        FM.qonnx_cnn_po2,
        FM.qonnx_bipolar_net,
        FM.qonnx_multithreshold,
        lambda: FM.qonnx_trunc(1),
        lambda: FM.qonnx_trunc(2),
    ],
    ids=["cnn_po2", "bipolar", "multithreshold", "trunc_v1", "trunc_v2"],
)
def test_qonnx_graphs_are_exact_against_qonnx_executor(build):
    from trigger_ml.interop.onnx_front import read

    m, x = build()
    front = read(m)
    y, ref = _evaluate(front, x), _executor(m).predict(x)
    np.testing.assert_array_equal(y, ref)
    assert len(np.unique(ref)) > 2 or set(np.unique(ref)) == {-1.0, 1.0}


def test_power_of_two_quantizers_are_quant_ops_and_the_input_quant_is_the_input_format():
    from trigger_ml.interop.onnx_front import read

    m, _ = FM.qonnx_cnn_po2()
    g = read(m).graph
    q = g.inputs[0].q
    assert q is not None and q.uniform() is not None and str(q.uniform()) == "fixed<8,3,RND_CONV,SAT>"
    assert [n.op for n in g.nodes].count("quant") == 3 and not any(n.op == "threshold" for n in g.nodes)


def test_non_power_of_two_per_channel_scales_are_exact_thresholds_ties_included():
    from trigger_ml.interop.onnx_front import read

    m, x = FM.qonnx_non_po2_input()
    front = read(m)
    g = front.graph
    (th,) = [n for n in g.nodes if n.op == "threshold"]
    assert th.weights["thresholds"].shape == (3, 31)
    ref = _executor(m).predict(x)
    y = _evaluate(front, x)
    # q s is exact in float64; qonnx rounds it to float32: equal as float32 values
    np.testing.assert_array_equal(y.astype(np.float32), ref.astype(np.float32))
    s = np.array([0.3, 0.0371, 1.7], np.float32).reshape(1, 3, 1, 1)
    v = (x.astype(np.float32) / s).reshape(len(x), -1)
    assert np.sum(v == np.floor(v) + 0.5) > 100  # exact ties of round-half-to-even were exercised
    assert isinstance(th.attrs["float32_decided"], int)


def test_non_power_of_two_mlp_matches_qonnx_up_to_its_own_float32_decisions():
    """Exact in exact arithmetic: the integer codes of every quantizer agree with qonnx's executor
    except where its float32 arithmetic lands within its rounding error of a boundary."""
    from trigger_ml.fixed import smallest_holding
    from trigger_ml.interop.onnx_front import read

    m, x = FM.qonnx_non_po2_mlp()
    front = read(m)
    g = front.graph
    first, second = [n for n in g.nodes if n.op == "dense"]
    np.testing.assert_array_equal(first.weights["kernel"], np.round(first.weights["kernel"]))  # the weight codes
    assert smallest_holding(second.weights["kernel"]).frac == 2  # the power-of-two weights as they are
    assert [n.op for n in g.nodes] == ["threshold", "dense", "threshold", "dense", "threshold"]  # scales in thresholds
    y, ref = _evaluate(front, x), _executor(m).predict(x)
    s_a, s_out = np.float32(0.37), np.float32(0.05)
    codes, codes_ref = np.rint(y / s_out), np.rint(ref / s_out)
    np.testing.assert_array_equal(y[codes == codes_ref].astype(np.float32), ref[codes == codes_ref].astype(np.float32))
    # where they differ, the exact value x / s before rounding is within float32 error of a tie
    v = _evaluate(front, x, keep=True)["mm1"] * np.float64(s_a) / np.float64(s_out)
    near = np.abs(v - (np.floor(v) + 0.5)) <= 1e-5 * np.maximum(np.abs(v), 1)
    assert np.all(near[codes != codes_ref]) and np.mean(codes == codes_ref) > 0.95
    assert near.sum() > (codes != codes_ref).sum() > 0  # 0.37 / 0.05 = 7.4: near-ties are everywhere here


def test_non_power_of_two_cnn_keeps_integer_convolutions_and_folds_per_channel_scales():
    from trigger_ml.interop.onnx_front import read

    m, x = FM.qonnx_non_po2_cnn()
    front = read(m)
    g = front.graph
    assert [n.op for n in g.nodes] == [
        "threshold",
        "conv",
        "threshold",
        "conv",
        "threshold",
        "flatten",
        "dense",
        "threshold",
    ]
    conv1 = g.nodes[1]
    np.testing.assert_array_equal(conv1.weights["kernel"], np.round(conv1.weights["kernel"]))  # weight codes
    assert "bias" not in conv1.weights  # moved after the scales, into the fused threshold
    dense = g.nodes[6]
    np.testing.assert_array_equal(dense.attrs["folded_scale"], np.float32([0.13, 0.3, 0.052]).astype(np.float64))
    assert front.facts["a1"]["inputs"] > 1000 and front.facts["y"]["thresholds"].startswith("exact")
    y, ref = _evaluate(front, x), _executor(m).predict(x)
    codes, codes_ref = np.rint(y / np.float32(0.1)), np.rint(ref / np.float32(0.1))
    v = _evaluate(front, x, keep=True)["mm"] / np.float64(np.float32(0.1))
    near = np.abs(v - (np.floor(v) + 0.5)) <= 1e-5 * np.maximum(np.abs(v), 1)
    assert np.all(near[codes != codes_ref]) and np.mean(codes == codes_ref) > 0.99


def test_bn_and_sigmoid_before_quant_become_thresholds_proven_by_the_executor():
    from trigger_ml.interop.onnx_front import read

    m, x = FM.qonnx_bn_quant()
    front = read(m)
    g = front.graph
    assert [n.op for n in g.nodes] == ["conv", "threshold", "flatten", "dense", "threshold"]
    fused = list(front.facts.values())
    assert all(f["reference"] == "qonnx executor" for f in fused) and len(fused) == 2
    np.testing.assert_array_equal(_evaluate(front, x), _executor(m).predict(x))
    out_scale = g.nodes[1].attrs["out_scale"]
    assert np.any(out_scale < 0) and np.any(out_scale > 0)  # negative gammas: decreasing channels


def test_bipolar_input_is_recognised():
    from trigger_ml.interop.onnx_front import read

    m, _ = FM.qonnx_bipolar_net()
    g = read(m).graph
    assert g.inputs[0].q is None and g.nodes[0].op == "bipolar" and any("bipolar" in n for n in g.notes)


def test_float_input_without_quantizer_has_no_format():
    from trigger_ml.interop.onnx_front import read

    m, _ = FM.float_cnn_nchw()
    assert read(m).graph.inputs[0].q is None


# ----------------------------------------------------------------------------- bad input


def test_random_bytes_and_truncated_files_are_one_schema_error(tmp_path):
    from trigger_ml.errors import SchemaError
    from trigger_ml.interop.onnx_front import read

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(SchemaError, match="junk.onnx"):
        read(junk)
    m, _ = FM.qonnx_cnn_po2()
    data = m.SerializeToString()
    cut = tmp_path / "cut.onnx"
    for n in (len(data) // 2, len(data) - 7, 40):
        cut.write_bytes(data[:n])
        with pytest.raises(SchemaError):
            read(cut)


def _with_external(tmp_path, location: str):
    from onnx import TensorProto

    m, x = FM.float_opset7()
    t = next(t for t in m.graph.initializer if t.name == "w")
    raw = np.asarray(onnx.numpy_helper.to_array(t)).tobytes()
    t.ClearField("float_data")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", location
    path = tmp_path / "model" / "m.onnx"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(m.SerializeToString())
    return path, raw, x


@pytest.mark.parametrize("where", ["../secret.bin", "/etc/hostname", "sub/../../secret.bin", "link.bin"])
def test_external_data_outside_the_model_folder_is_refused_before_reading(tmp_path, where):
    from trigger_ml.errors import SchemaError
    from trigger_ml.interop.onnx_front import read

    path, raw, _ = _with_external(tmp_path, where)
    (tmp_path / "secret.bin").write_bytes(raw)
    (path.parent / "link.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(SchemaError, match="outside the model's folder"):
        read(path)


def test_external_data_beside_the_model_is_read(tmp_path):
    from trigger_ml.interop.onnx_front import read

    path, raw, x = _with_external(tmp_path, "weights.bin")
    (path.parent / "weights.bin").write_bytes(raw)
    front = read(path)
    m, _ = FM.float_opset7()
    _close(_evaluate(front, x), _ort(read(m).model).predict(x))


def test_unknown_domains_and_ops_are_one_error_listing_each_with_an_alternative():
    from onnx import helper

    from trigger_ml.errors import UnsupportedError
    from trigger_ml.interop.onnx_front import read

    nodes = [
        helper.make_node("LeakyRelu", ["x"], ["a"]),
        helper.make_node("Foo", ["a"], ["b"], domain="com.example"),
        helper.make_node("Quantise", ["b"], ["c"], domain=FM.QONNX),
        helper.make_node("Resize", ["c"], ["y"]),
    ]
    m = FM.model(nodes, [], (1, 4), (1, 4), qonnx=True)
    with pytest.raises(UnsupportedError) as e:
        read(m)
    msg = str(e.value)
    assert "4 unsupported" in msg and "nearest supported: Relu" in msg and "com.example" in msg
    assert "nearest supported: Quant" in msg and "Resize" in msg


def test_unsupported_attributes_are_collected_in_one_error():
    from trigger_ml.errors import UnsupportedError
    from trigger_ml.interop.onnx_front import read

    inits = [FM.const("w", np.ones((2, 1, 3, 3))), FM.const("s", 0.3), FM.const("z", 1.0), FM.const("b", 4.0)]
    nodes = [
        FM.node("Conv", ["x", "w"], ["c"], dilations=[2, 2]),
        FM.quant("c", "q", "s", "z", "b"),
        FM.node("Relu", ["q"], ["y"]),
    ]
    with pytest.raises(UnsupportedError) as e:
        read(FM.model(nodes, inits, (1, 1, 8, 8), None, qonnx=True))
    msg = str(e.value)
    assert "dilations" in msg and "1 problem" in msg  # the Quant reads the refused Conv: not listed again


def test_the_importer_reads_first_and_writes_nothing_on_bad_input(tmp_path):
    from trigger_ml.errors import SchemaError
    from trigger_ml.interop.onnx_front import import_file

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07" + bytes(range(200)))
    with pytest.raises(SchemaError):
        import_file(junk, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("mode", ["ROUND", "HALF_EVEN", "FLOOR", "CEIL", "UP", "DOWN", "HALF_UP", "HALF_DOWN"])
@pytest.mark.parametrize("scale", [0.25, 0.3])
def test_every_rounding_mode_signedness_and_narrow_range_is_qonnx_exactly(mode, scale):
    from trigger_ml.interop.onnx_front import read

    rng = np.random.default_rng(3)
    ties = ((rng.integers(-9, 9, (200, 6)) + 0.5) * np.float64(np.float32(scale))).astype(np.float32)
    x = np.concatenate([ties, FM.grid_inputs((6,), 200, 4, -3.5, 3.5, 2.0**-6)]).astype(np.float64)
    for signed in (0, 1):
        for narrow in (0, 1):
            inits = [FM.const("s", scale), FM.const("z", 0.0), FM.const("b", 3.0)]
            m = FM.model([FM.quant("x", "y", "s", "z", "b", signed, narrow, mode)], inits, (1, 6), (1, 6), qonnx=True)
            front = read(m)
            ops = [n.op for n in front.graph.nodes]
            assert ops == (["threshold"] if scale == 0.3 or mode in ("CEIL", "UP") else ops)
            y, ref = _evaluate(front, x), _executor(m).predict(x)
            np.testing.assert_array_equal(y.astype(np.float32), ref.astype(np.float32), err_msg=f"{signed=} {narrow=}")
