"""Small (Q)ONNX models built with onnx.helper (no network, no torch/brevitas)."""

from __future__ import annotations

import numpy as np

from .front_models import QONNX, const, model, quant


def _model(nodes, inits, n_in: int, n_out: int):
    return model(nodes, inits, (1, n_in), (1, n_out), qonnx=True)


def qonnx_mlp_2bit(sizes=(8, 16, 8, 4), seed: int = 0, ir_version: int | None = 14):
    """Quant(input, 4 bits) -> Reshape (1, -1) (as exporters write it) -> [MatMul (2-bit weights, Quant nodes on float weights) + Add bias ->
    Relu -> Quant (2-bit unsigned)] ... -> last MatMul + Add -> Quant (4-bit signed) output."""
    from onnx import helper

    rng = np.random.default_rng(seed)
    from onnx import numpy_helper

    nodes = [quant("x", "xq", "s_in", "zero", "b_in", 1), helper.make_node("Reshape", ["xq", "flat"], ["a0"])]
    inits = [
        numpy_helper.from_array(np.array([1, -1], np.int64), "flat"),
        const("zero", 0.0),
        const("s_in", 2.0**-2),
        const("b_in", 4.0),
        const("s_w", 0.5),
        const("b2", 2.0),
        const("s_a", 0.5),
        const("s_out", 2.0**-2),
        const("b_out", 6.0),
    ]
    a = "a0"
    for j, (n_i, n_o) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.normal(0, 0.7, (n_i, n_o)).astype(np.float32)  # float weights, quantized by the graph
        inits += [const(f"w{j}", w), const(f"bias{j}", rng.integers(-4, 5, n_o) / 8)]
        nodes += [
            quant(f"w{j}", f"wq{j}", "s_w", "zero", "b2", 1),
            helper.make_node("MatMul", [a, f"wq{j}"], [f"mm{j}"]),
            helper.make_node("Add", [f"mm{j}", f"bias{j}"], [f"z{j}"]),
        ]
        last = j == len(sizes) - 2
        if last:
            nodes.append(quant(f"z{j}", "y", "s_out", "zero", "b_out", 1))
        else:
            nodes += [
                helper.make_node("Relu", [f"z{j}"], [f"r{j}"]),
                quant(f"r{j}", f"a{j + 1}", "s_a", "zero", "b2", 0),
            ]
            a = f"a{j + 1}"
    m = _model(nodes, inits, sizes[0], sizes[-1])
    if ir_version:
        m.ir_version = ir_version
    return m


def qonnx_bipolar(n_in: int = 8, hidden: int = 12, n_out: int = 3, seed: int = 1):
    """Quant(input, 3 bits) -> MatMul (bipolar ±1 weights) -> BipolarQuant -> Gemm (bipolar weights,
    transB, bias) -> BipolarQuant output: a binary layer and a binary output."""
    from onnx import helper

    rng = np.random.default_rng(seed)
    inits = [
        const("zero", 0.0),
        const("s_in", 2.0**-1),
        const("b_in", 3.0),
        const("one", 1.0),
        const("w0", rng.normal(size=(n_in, hidden))),
        const("w1", rng.normal(size=(n_out, hidden))),
        const("c1", rng.integers(-2, 3, n_out).astype(np.float32)),
    ]
    nodes = [
        quant("x", "xq", "s_in", "zero", "b_in", 1),
        helper.make_node("BipolarQuant", ["w0", "one"], ["w0q"], domain=QONNX),
        helper.make_node("MatMul", ["xq", "w0q"], ["z0"]),
        helper.make_node("BipolarQuant", ["z0", "one"], ["h0"], domain=QONNX),
        helper.make_node("BipolarQuant", ["w1", "one"], ["w1q"], domain=QONNX),
        helper.make_node("Gemm", ["h0", "w1q", "c1"], ["z1"], transB=1),
        helper.make_node("BipolarQuant", ["z1", "one"], ["y"], domain=QONNX),
    ]
    return _model(nodes, inits, n_in, n_out)


def float_mlp(sizes=(6, 10, 3), seed: int = 2):
    """A float ONNX MLP: Gemm + Relu, last Gemm linear."""
    from onnx import helper

    rng = np.random.default_rng(seed)
    nodes, inits, a = [], [], "x"
    for j, (n_i, n_o) in enumerate(zip(sizes[:-1], sizes[1:])):
        inits += [
            const(f"w{j}", rng.normal(0, 1 / np.sqrt(n_i), (n_i, n_o))),
            const(f"b{j}", rng.normal(0, 0.1, n_o)),
        ]
        out = "y" if j == len(sizes) - 2 else f"z{j}"
        nodes.append(helper.make_node("Gemm", [a, f"w{j}", f"b{j}"], [out]))
        if out != "y":
            nodes.append(helper.make_node("Relu", [out], [f"r{j}"]))
            a = f"r{j}"
    m = _model(nodes, inits, sizes[0], sizes[-1])
    del m.opset_import[1]
    return m
