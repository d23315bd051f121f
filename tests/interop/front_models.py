"""ONNX and QONNX graphs for the front end's tests, built with onnx.helper (no torch, no brevitas):
one per op family, each with inputs that exercise it (ties of the rounding, negative values)."""

from __future__ import annotations

import numpy as np

QONNX = "qonnx.custom_op.general"
F32 = 1  # TensorProto.FLOAT


def const(name: str, value, dtype=np.float32):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, dtype), name)


def model(nodes, inits, x_shape, y_shape, opset: int = 13, qonnx: bool = False, y_name: str = "y"):
    from onnx import helper

    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F32, list(x_shape))],
        [helper.make_tensor_value_info(y_name, F32, list(y_shape) if y_shape is not None else None)],
        inits,
    )
    ops = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(QONNX, 1)] if qonnx else [])
    m = helper.make_model(g, opset_imports=ops)
    m.ir_version = 8
    return m


def node(op: str, ins, outs, domain: str = "", **attrs):
    from onnx import helper

    return helper.make_node(op, list(ins), list(outs), domain=domain, **attrs)


def quant(x: str, y: str, scale: str, zero: str, bits: str, signed: int = 1, narrow: int = 0, rounding: str = "ROUND"):
    return node("Quant", [x, scale, zero, bits], [y], QONNX, signed=signed, narrow=narrow, rounding_mode=rounding)


def grid_inputs(shape, n: int, seed: int, lo: float = -2.0, hi: float = 2.0, step: float = 2.0**-8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(lo, hi, (n, *shape)) / step) * step


# ----------------------------------------------------------------------------- float


def float_cnn_nchw(seed: int = 0):
    """NCHW PyTorch-style CNN: Conv (asymmetric pads, stride 2) -> BN -> Relu -> depthwise Conv
    (SAME_UPPER) -> Add of the two branches -> MaxPool (pads) -> AveragePool (count_include_pad=0,
    pads) -> Concat with a GlobalAveragePool branch broadcast... -> Flatten -> Gemm(transB) -> Softmax."""
    rng = np.random.default_rng(seed)
    c = 4
    inits = [
        const("w1", rng.normal(0, 0.5, (c, 3, 3, 3))),
        const("b1", rng.normal(0, 0.1, c)),
        const("g", rng.uniform(0.5, 1.5, c)),
        const("be", rng.normal(0, 0.1, c)),
        const("mu", rng.normal(0, 0.1, c)),
        const("var", rng.uniform(0.5, 2, c)),
        const("wd", rng.normal(0, 0.5, (c, 1, 3, 3))),
        const("wg", rng.normal(0, 0.3, (5, c * 3 * 3 + c))),
        const("bg", rng.normal(0, 0.1, 5)),
    ]
    nodes = [
        node("Conv", ["x", "w1", "b1"], ["c1"], pads=[0, 1, 2, 1], strides=[2, 2]),
        node("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["bn"], epsilon=1e-3),
        node("Relu", ["bn"], ["r1"]),
        node("Conv", ["r1", "wd"], ["dw"], group=c, auto_pad="SAME_UPPER"),
        node("Add", ["r1", "dw"], ["s"]),
        node("MaxPool", ["s"], ["mp"], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1]),
        node("AveragePool", ["mp"], ["ap"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        node("Flatten", ["ap"], ["fl"]),
        node("GlobalAveragePool", ["s"], ["gap"]),
        node("Flatten", ["gap"], ["gfl"]),
        node("Concat", ["fl", "gfl"], ["cat"], axis=1),
        node("Gemm", ["cat", "wg", "bg"], ["z"], transB=1),
        node("Softmax", ["z"], ["y"], axis=1),
    ]
    return model(nodes, inits, (1, 3, 11, 10), (1, 5)), grid_inputs((3, 11, 10), 64, seed)


def float_conv1d_ncw(seed: int = 1):
    """NCW Conv1d (pads [1, 2]) -> Tanh -> AveragePool count_include_pad=1 -> GlobalMaxPool ->
    Squeeze -> MatMul -> Sigmoid, and a Clip/Div/Pow/Sub/Mul on the way."""
    rng = np.random.default_rng(seed)
    inits = [
        const("w", rng.normal(0, 0.5, (6, 2, 4))),
        const("d", 3.0),
        const("two", 2.0),
        const("m", rng.normal(0, 1, (6, 3))),
        const("off", rng.normal(0, 0.1, (1, 3))),
        const("lo", -0.5),
        const("hi", 0.75),
        const("axes", [2], np.int64),
    ]
    nodes = [
        node("Conv", ["x", "w"], ["c"], pads=[1, 2]),
        node("Div", ["c", "d"], ["cd"]),
        node("Tanh", ["cd"], ["t"]),
        node("AveragePool", ["t"], ["ap"], kernel_shape=[3], strides=[2], pads=[1, 1], count_include_pad=1),
        node("Pow", ["ap", "two"], ["sq"]),
        node("GlobalMaxPool", ["sq"], ["gm"]),
        node("Squeeze", ["gm", "axes"], ["s"]),
        node("MatMul", ["s", "m"], ["mm"]),
        node("Sub", ["mm", "off"], ["sb"]),
        node("Clip", ["sb", "lo", "hi"], ["cl"]),
        node("Sigmoid", ["cl"], ["y"]),
    ]
    return model(nodes, inits, (1, 2, 12), (1, 3)), grid_inputs((2, 12), 64, seed)


def float_reshape_chain(seed: int = 2):
    """Brevitas' preprocessing chain (Shape/Gather/Unsqueeze/Concat/Reshape) on an NCHW input,
    Unsqueeze/Transpose/Pad/Identity/Dropout on the way, Selu and Neg, Max with a constant."""
    rng = np.random.default_rng(seed)
    inits = [
        const("zero_i", 0, np.int64),
        const("minus1", [-1], np.int64),
        const("w", rng.normal(0, 0.5, (2 * 4 * 5, 3))),
        const("c0", 0.1),
        const("ax", [1], np.int64),
    ]
    nodes = [
        node("Identity", ["x"], ["xi"]),
        node("Pad", ["xi", "pads"], ["xp"]),
        node("Transpose", ["xp"], ["xt"], perm=[0, 1, 3, 2]),
        node("Shape", ["xt"], ["sh"]),
        node("Gather", ["sh", "zero_i"], ["n"], axis=0),
        node("Unsqueeze", ["n", "ax0"], ["n1"]),
        node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        node("Reshape", ["xt", "shape"], ["flat"]),
        node("Dropout", ["flat"], ["dr"]),
        node("MatMul", ["dr", "w"], ["mm"]),
        node("Selu", ["mm"], ["se"]),
        node("Neg", ["se"], ["ng"]),
        node("Max", ["ng", "c0"], ["mx"]),
        node("Unsqueeze", ["mx", "ax"], ["y"]),
    ]
    inits += [const("pads", [0, 0, 1, 0, 0, 0, 0, 1], np.int64), const("ax0", [0], np.int64)]
    return model(nodes, inits, (1, 2, 3, 4), (1, 1, 3)), grid_inputs((2, 3, 4), 64, seed)


def float_opset7(seed: int = 3):
    """An old exporter's file (opset 7): Gemm, BatchNormalization (v7), Relu, Reshape."""
    rng = np.random.default_rng(seed)
    inits = [
        const("w", rng.normal(0, 0.5, (4, 6))),
        const("b", rng.normal(0, 0.1, 6)),
        const("g", rng.uniform(0.5, 1.5, 6)),
        const("be", rng.normal(0, 0.1, 6)),
        const("mu", rng.normal(0, 0.1, 6)),
        const("var", rng.uniform(0.5, 2, 6)),
    ]
    nodes = [
        node("Gemm", ["x", "w", "b"], ["z"]),
        node("BatchNormalization", ["z", "g", "be", "mu", "var"], ["bn"]),
        node("Relu", ["bn"], ["y"]),
    ]
    return model(nodes, inits, (1, 4), (1, 6), opset=7), grid_inputs((4,), 64, seed)


# ----------------------------------------------------------------------------- QONNX


def qonnx_cnn_po2(seed: int = 4):
    """A Brevitas-like NCHW CNN with power-of-two scales: input Quant (8 bits, 2**-5) -> Conv
    (weights Quant 4 bits, per-channel power-of-two scales) + bias -> Relu -> Quant (4 bits unsigned)
    -> MaxPool -> Conv depthwise -> Quant (narrow signed) -> Flatten -> MatMul (2-bit weights) ->
    Quant output (6 bits, FLOOR)."""
    rng = np.random.default_rng(seed)
    c = 3
    inits = [
        const("z", 0.0),
        const("s_in", 2.0**-5),
        const("b8", 8.0),
        const("b4", 4.0),
        const("b2", 2.0),
        const("b6", 6.0),
        const("w1", rng.normal(0, 0.5, (c, 2, 3, 3))),
        const("s_w1", 2.0 ** rng.integers(-4, -1, (c, 1, 1, 1))),
        const("bias1", rng.integers(-8, 8, c) / 16),
        const("s_a", 2.0**-2),
        const("wd", rng.normal(0, 0.5, (c, 1, 2, 2))),
        const("s_wd", 2.0**-2),
        const("s_b", 2.0**-1),
        const("w2", rng.normal(0, 0.7, (c * 3 * 3, 4))),
        const("s_w2", 0.5),
        const("s_out", 2.0**-1),
    ]
    nodes = [
        quant("x", "xq", "s_in", "z", "b8"),
        quant("w1", "w1q", "s_w1", "z", "b4", narrow=1),
        node("Conv", ["xq", "w1q", "bias1"], ["c1"], pads=[1, 1, 1, 1]),
        node("Relu", ["c1"], ["r1"]),
        quant("r1", "a1", "s_a", "z", "b4", signed=0),
        node("MaxPool", ["a1"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
        quant("wd", "wdq", "s_wd", "z", "b4"),
        node("Conv", ["mp", "wdq"], ["dw"], group=c, pads=[0, 0, 1, 1]),
        quant("dw", "a2", "s_b", "z", "b4", narrow=1),
        node("Flatten", ["a2"], ["fl"]),
        quant("w2", "w2q", "s_w2", "z", "b2"),
        node("MatMul", ["fl", "w2q"], ["mm"]),
        quant("mm", "y", "s_out", "z", "b6", rounding="FLOOR"),
    ]
    return model(nodes, inits, (1, 2, 6, 6), (1, 4), qonnx=True), grid_inputs((2, 6, 6), 300, seed, -4.5, 4.5, 2.0**-7)


def qonnx_non_po2_input(seed: int = 5):
    """Per-channel Quant with scales that are not powers of two on an NCHW input, straight to the
    output: thresholds must reproduce qonnx's float32 x / s exactly, ties included."""
    s = np.array([0.3, 0.0371, 1.7], np.float32).reshape(1, 3, 1, 1)
    inits = [const("s", s), const("z", 0.0), const("b", 5.0)]
    nodes = [quant("x", "y", "s", "z", "b")]
    m = model(nodes, inits, (1, 3, 2, 2), (1, 3, 2, 2), qonnx=True)
    rng = np.random.default_rng(seed)
    k = rng.integers(-17, 17, (400, 3, 2, 2))
    ties = ((k + 0.5) * s.astype(np.float64)).astype(np.float32)  # x / s lands on k + 1/2 (or next to it)
    x = np.concatenate([ties, grid_inputs((3, 2, 2), 200, seed, -8, 8, 2.0**-9)])
    return m, x.astype(np.float64)


def qonnx_non_po2_mlp(seed: int = 6):
    """Quant(input, s = 0.11, 6 bits) -> MatMul (weights Quant 4 bits, per-column scales not powers of
    two) -> Add (bias) -> Relu -> Quant (s = 0.37, 4 bits unsigned, HALF_UP) -> MatMul (power-of-two
    weights) -> Quant output (s = 0.05, 8 bits)."""
    rng = np.random.default_rng(seed)
    inits = [
        const("z", 0.0),
        const("s_in", 0.11),
        const("b6", 6.0),
        const("b4", 4.0),
        const("b8", 8.0),
        const("w0", rng.normal(0, 1, (5, 7))),
        const("s_w0", rng.uniform(0.05, 0.2, (1, 7))),
        const("bias0", rng.normal(0, 0.2, 7)),
        const("s_a", 0.37),
        const("w1", rng.normal(0, 1, (7, 3))),
        const("s_w1", 0.25),
        const("s_out", 0.05),
    ]
    nodes = [
        quant("x", "xq", "s_in", "z", "b6"),
        quant("w0", "w0q", "s_w0", "z", "b4"),
        node("MatMul", ["xq", "w0q"], ["mm0"]),
        node("Add", ["mm0", "bias0"], ["z0"]),
        node("Relu", ["z0"], ["r0"]),
        quant("r0", "a0", "s_a", "z", "b4", signed=0, rounding="HALF_UP"),
        quant("w1", "w1q", "s_w1", "z", "b4"),
        node("MatMul", ["a0", "w1q"], ["mm1"]),
        quant("mm1", "y", "s_out", "z", "b8"),
    ]
    return model(nodes, inits, (1, 5), (1, 3), qonnx=True), grid_inputs((5,), 400, seed, -4, 4, 2.0**-8)


def qonnx_bn_quant(seed: int = 7):
    """The TFC pattern on a conv: Quant input (4 bits) -> Conv (bipolar weights) -> BatchNormalization
    (negative gammas too) -> Quant (3 bits, scale 1, narrow) -> GlobalAveragePool... no: Flatten ->
    MatMul (bipolar weights) -> BatchNormalization -> Sigmoid -> Quant (4 bits unsigned, 2**-4)."""
    rng = np.random.default_rng(seed)
    c = 5
    g = rng.uniform(0.3, 1.5, c) * rng.choice([-1, 1], c)
    inits = [
        const("z", 0.0),
        const("one", 1.0),
        const("s_in", 0.5),
        const("b4", 4.0),
        const("b3", 3.0),
        const("w", rng.normal(size=(c, 1, 3, 3))),
        const("g", g),
        const("be", rng.normal(0, 0.5, c)),
        const("mu", rng.normal(0, 2, c)),
        const("var", rng.uniform(1, 20, c)),
        const("w2", rng.normal(size=(c * 4 * 4, 3))),
        const("g2", rng.uniform(0.02, 0.1, 3)),
        const("be2", rng.normal(0, 0.5, 3)),
        const("mu2", rng.normal(0, 2, 3)),
        const("var2", rng.uniform(1, 4, 3)),
        const("s_o", 2.0**-4),
    ]
    nodes = [
        quant("x", "xq", "s_in", "z", "b4"),
        node("BipolarQuant", ["w", "one"], ["wq"], QONNX),
        node("Conv", ["xq", "wq"], ["c1"]),
        node("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["bn"]),
        quant("bn", "a1", "one", "z", "b3", narrow=1),
        node("Flatten", ["a1"], ["fl"]),
        node("BipolarQuant", ["w2", "one"], ["w2q"], QONNX),
        node("MatMul", ["fl", "w2q"], ["mm"]),
        node("BatchNormalization", ["mm", "g2", "be2", "mu2", "var2"], ["bn2"]),
        node("Sigmoid", ["bn2"], ["sg"]),
        quant("sg", "y", "s_o", "z", "b4", signed=0),
    ]
    return model(nodes, inits, (1, 1, 6, 6), (1, 3), qonnx=True), grid_inputs((1, 6, 6), 400, seed, -4.5, 4.5, 0.25)


def qonnx_bipolar_net(seed: int = 8):
    """Bipolar input (BipolarQuant on x) -> MatMul (bipolar weights) -> BipolarQuant (scale 0.5) ->
    Gemm (transB, alpha 2) -> 1-bit signed Quant (bipolar) output."""
    rng = np.random.default_rng(seed)
    inits = [
        const("one", 1.0),
        const("half", 0.5),
        const("z", 0.0),
        const("w0", rng.normal(size=(9, 8))),
        const("w1", rng.normal(size=(4, 8))),
        const("c1", rng.integers(-2, 3, 4)),
    ]
    nodes = [
        node("BipolarQuant", ["x", "one"], ["xb"], QONNX),
        node("BipolarQuant", ["w0", "one"], ["w0q"], QONNX),
        node("MatMul", ["xb", "w0q"], ["z0"]),
        node("BipolarQuant", ["z0", "half"], ["h0"], QONNX),
        node("BipolarQuant", ["w1", "one"], ["w1q"], QONNX),
        node("Gemm", ["h0", "w1q", "c1"], ["z1"], transB=1, alpha=2.0),
        quant("z1", "y", "one", "z", "one"),
    ]
    return model(nodes, inits, (1, 9), (1, 4), qonnx=True), grid_inputs((9,), 300, seed, -1, 1, 2.0**-3)


def qonnx_trunc(version: int, seed: int = 9):
    """Quant(input, 6 bits, 2**-2) -> MatMul (3-bit integer weights) -> AveragePool-like sum -> Trunc:
    v1 floor(round(x / s) / 2**3) s, v2 onto the scale 2**1 with 5 bits (saturating)."""
    rng = np.random.default_rng(seed)
    inits = [
        const("z", 0.0),
        const("s_in", 2.0**-2),
        const("b6", 6.0),
        const("one", 1.0),
        const("b3", 3.0),
        const("w", rng.integers(-4, 4, (6, 4))),
        const("b12", 12.0),
        const("b9", 9.0),
        const("s_out", 2.0**1),
        const("b5", 5.0),
    ]
    args = ["mm", "s_in", "z", "b12", "b9"] if version == 1 else ["mm", "s_in", "z", "b12", "s_out", "b5"]
    nodes = [
        quant("x", "xq", "s_in", "z", "b6"),
        quant("w", "wq", "one", "z", "b3"),
        node("MatMul", ["xq", "wq"], ["mm"]),
        node("Trunc", args, ["y"], QONNX, rounding_mode="FLOOR"),
    ]
    m = model(nodes, inits, (1, 6), (1, 4), qonnx=True)
    m.opset_import[1].version = version
    return m, grid_inputs((6,), 400, seed, -9, 9, 0.125)


def qonnx_multithreshold(seed: int = 10):
    """FINN-style: MatMul (integer weights) -> MultiThreshold (per-channel thresholds, out_bias -2)
    -> MatMul -> MultiThreshold (one shared set, out_scale 0.5) on an NCHW->NHWC tensor."""
    rng = np.random.default_rng(seed)
    th1 = np.sort(rng.integers(-6, 7, (4, 3)), axis=1) + 0.5
    th2 = np.array([[-1.0, 0.0, 2.0]])
    inits = [
        const("w", rng.integers(-2, 3, (5, 4))),
        const("t1", th1),
        const("w2", rng.integers(-2, 3, (4, 2))),
        const("t2", th2),
    ]
    nodes = [
        node("MatMul", ["x", "w"], ["mm"]),
        node("MultiThreshold", ["mm", "t1"], ["m1"], QONNX, out_dtype="INT2", out_bias=-2.0),
        node("MatMul", ["m1", "w2"], ["mm2"]),
        node("MultiThreshold", ["mm2", "t2"], ["y"], QONNX, out_dtype="UINT2", out_scale=0.5),
    ]
    return model(nodes, inits, (1, 5), (1, 2), qonnx=True), np.round(grid_inputs((5,), 300, seed, -3, 3, 1.0))


def qonnx_non_po2_cnn(seed: int = 11):
    """Brevitas' defaults on a CNN: input Quant (s = 0.07, 6 bits) -> Conv (weights Quant 4 bits with
    per-output-channel scales that are not powers of two) + bias -> Relu -> Quant (s = 0.21, 4 bits
    unsigned) -> Conv 1x1 -> Quant per channel (scales 0.13, 0.3, 0.052, 5 bits) -> Flatten -> MatMul
    (power-of-two weights) -> Quant output (s = 0.1, 8 bits)."""
    rng = np.random.default_rng(seed)
    c = 3
    inits = [
        const("z", 0.0),
        const("s_in", 0.07),
        const("b6", 6.0),
        const("b4", 4.0),
        const("b5", 5.0),
        const("b8", 8.0),
        const("w1", rng.normal(0, 1, (c, 2, 3, 3))),
        const("s_w1", rng.uniform(0.05, 0.3, (c, 1, 1, 1))),
        const("bias1", rng.normal(0, 0.3, c)),
        const("s_a", 0.21),
        const("w2", rng.integers(-2, 3, (c, c, 1, 1))),
        const("s_c", np.array([0.13, 0.3, 0.052]).reshape(1, c, 1, 1)),
        const("w3", rng.integers(-4, 4, (c * 4 * 4, 2)) / 4),
        const("s_out", 0.1),
    ]
    nodes = [
        quant("x", "xq", "s_in", "z", "b6"),
        quant("w1", "w1q", "s_w1", "z", "b4", narrow=1),
        node("Conv", ["xq", "w1q", "bias1"], ["c1"], pads=[0, 0, 1, 1]),
        node("Relu", ["c1"], ["r1"]),
        quant("r1", "a1", "s_a", "z", "b4", signed=0),
        node("Conv", ["a1", "w2"], ["c2"]),
        quant("c2", "a2", "s_c", "z", "b5"),
        node("Flatten", ["a2"], ["fl"]),
        node("MatMul", ["fl", "w3"], ["mm"]),
        quant("mm", "y", "s_out", "z", "b8"),
    ]
    return model(nodes, inits, (1, 2, 5, 5), (1, 2), qonnx=True), grid_inputs((2, 5, 5), 300, seed, -2.5, 2.5, 2.0**-8)


def float_two_tensor_ops(seed: int = 12):
    """Two branches of one NCW input joined by Add, Sub, Mul and Max of two tensors, Concat on the
    channel axis, then Transpose/Flatten (Keras-style) into a Gemm."""
    rng = np.random.default_rng(seed)
    inits = [const(f"w{j}", rng.normal(0, 0.5, (3, 2, 3))) for j in range(2)] + [
        const("wg", rng.normal(0, 0.5, (6 * 4, 2))),
    ]
    nodes = [
        node("Conv", ["x", "w0"], ["a"], pads=[1, 1]),
        node("Conv", ["x", "w1"], ["b"], pads=[1, 1]),
        node("Sub", ["a", "b"], ["d"]),
        node("Mul", ["a", "b"], ["p"]),
        node("Max", ["d", "p"], ["m"]),
        node("Add", ["m", "a"], ["s"]),
        node("Concat", ["s", "d"], ["c"], axis=1),
        node("Transpose", ["c"], ["ct"], perm=[0, 2, 1]),
        node("Flatten", ["ct"], ["f"]),
        node("Gemm", ["f", "wg"], ["y"]),
    ]
    return model(nodes, inits, (1, 2, 4), (1, 2)), grid_inputs((2, 4), 64, seed)
