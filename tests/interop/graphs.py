"""Hand-built import graphs (numpy weights), one per op and lowering rule, and graphs shaped like
the peer models (shared/peer-models: QKeras MLP with batch norm and softmax, QKeras CNN with
pooling, the TFC bipolar MLP with batch norms before 2-bit quantizers and an NCHW input, a Keras
conv1d with 'same' padding, a strided conv2d tagger)."""

from __future__ import annotations

import numpy as np

from trigger_ml.fixed import Fixed
from trigger_ml.interop.ir import SELU_ALPHA, SELU_SCALE, Graph, Input, Node, Quant


def q(signed, i, f, rnd="TRN", ovf="WRAP") -> Quant:
    return Quant.of(Fixed(bool(signed), i, f, rnd, ovf))


def grid_w(rng, shape, f=3, lim=1.0) -> np.ndarray:
    """Weights on the grid 2**-f in [-lim, lim]."""
    return np.round(rng.uniform(-lim, lim, shape) * 2**f) / 2**f


def _g(name, shape, nodes, out, q_in=None, layout="") -> Graph:
    return Graph(name, [Input("x", shape, q_in, layout)], nodes, [out], source=f"test {name}")


def dense_relu(seed=0) -> Graph:
    rng = np.random.default_rng(seed)
    w = {"kernel": grid_w(rng, (6, 5)), "bias": grid_w(rng, 5)}
    return _g(
        "dense_relu",
        (6,),
        [Node("dense", "d", ["x"], "h", {}, w), Node("relu", "r", ["h"], "y")],
        "y",
        q(1, 2, 3),
    )


def quant_edges(rounding="RND_CONV", overflow="SAT", seed=0) -> Graph:
    """A dense whose outputs hit round-half-to-even ties and the saturation edges of a narrow quantizer."""
    rng = np.random.default_rng(seed)
    w = {"kernel": grid_w(rng, (4, 3), f=1, lim=2), "bias": np.array([0.25, -0.25, 0.125])}
    return _g(
        f"quant_{rounding}_{overflow}".lower(),
        (4,),
        [
            Node("dense", "d", ["x"], "h", {}, w),
            Node("quant", "q", ["h"], "y", {"q": q(1, 1, 1, rounding, overflow)}),
        ],
        "y",
        q(1, 2, 3),
    )


def conv2d(pads=((1, 1), (1, 1)), strides=(1, 1), groups=1, seed=0) -> Graph:
    rng = np.random.default_rng(seed)
    cin, cout = 2, 4 if groups == 1 else 2 * 2
    k = grid_w(rng, (3, 3, cin // groups, cout))
    return _g(
        f"conv2d_g{groups}",
        (6, 6, cin),
        [
            Node(
                "conv",
                "c",
                ["x"],
                "h",
                {"strides": strides, "pads": pads, "groups": groups},
                {"kernel": k, "bias": grid_w(rng, cout)},
            ),
            Node("relu", "r", ["h"], "hr"),
            Node("flatten", "f", ["hr"], "y"),
        ],
        "y",
        q(1, 1, 3),
    )


def conv1d_same(k=4, seed=0) -> Graph:
    """Keras 'same' with an even kernel: asymmetric pads (lo = total // 2)."""
    rng = np.random.default_rng(seed)
    return _g(
        "conv1d_same",
        (8, 3),
        [
            Node(
                "conv",
                "c",
                ["x"],
                "h",
                {"strides": (1,), "pads": (((k - 1) // 2, k - 1 - (k - 1) // 2),)},
                {"kernel": grid_w(rng, (k, 3, 2)), "bias": grid_w(rng, 2)},
            ),
            Node("quant", "q", ["h"], "hq", {"q": q(1, 3, 2, "RND", "SAT")}),
            Node("flatten", "f", ["hq"], "y"),
        ],
        "y",
        q(1, 1, 3),
    )


def pad_transpose(seed=0) -> Graph:
    rng = np.random.default_rng(seed)
    return _g(
        "pad_transpose",
        (3, 4),
        [
            Node("pad", "p", ["x"], "xp", {"pads": ((2, 0),)}),
            Node("transpose", "t", ["xp"], "xt", {"perm": (1, 0)}),
            Node("flatten", "f", ["xt"], "xf"),
            Node("dense", "d", ["xf"], "y", {}, {"kernel": grid_w(rng, (20, 3)), "bias": np.zeros(3)}),
        ],
        "y",
        q(1, 2, 2),
    )


def pools(kind="maxpool", pool=(2, 2), seed=0) -> Graph:
    rng = np.random.default_rng(seed)
    return _g(
        f"{kind}_{'x'.join(map(str, pool))}",
        (6, 6, 2),
        [
            Node(kind, "p", ["x"], "h", {"pool": pool, "strides": pool}),
            Node("flatten", "f", ["h"], "hf"),
            Node(
                "dense",
                "d",
                ["hf"],
                "z",
                {},
                {"kernel": grid_w(rng, (2 * (6 // pool[0]) * (6 // pool[1]), 3)), "bias": np.zeros(3)},
            ),
            Node("quant", "q", ["z"], "y", {"q": q(1, 4, 4, "RND", "SAT")}),
        ],
        "y",
        q(1, 2, 4),
    )


def global_pools(seed=0) -> Graph:
    rng = np.random.default_rng(seed)
    return _g(
        "global_pools",
        (4, 4, 3),
        [
            Node("global_avgpool", "ga", ["x"], "a"),
            Node("global_maxpool", "gm", ["x"], "m"),
            Node("add", "s", ["a", "m"], "h"),
            Node("dense", "d", ["h"], "y", {}, {"kernel": grid_w(rng, (3, 2)), "bias": np.zeros(2)}),
        ],
        "y",
        q(1, 2, 3),
    )


def merges(seed=0) -> Graph:
    """Two dense branches of one input, merged by add, sub, mul, max, then concatenated (equal widths)."""
    rng = np.random.default_rng(seed)
    d = lambda n, i, o: Node("dense", n, [i], o, {}, {"kernel": grid_w(rng, (5, 4)), "bias": grid_w(rng, 4)})  # noqa: E731
    return _g(
        "merges",
        (5,),
        [
            d("a", "x", "ha"),
            d("b", "x", "hb"),
            Node("add", "add", ["ha", "hb"], "s"),
            Node("sub", "sub", ["ha", "hb"], "t"),
            Node("mul", "mul", ["s", "t"], "u"),
            Node("max", "max", ["u", "ha"], "v"),
            Node("concat", "cat", ["v", "s"], "y", {"axis": -1}),
        ],
        "y",
        q(1, 1, 2),
    )


def concat_dense(seed=0) -> Graph:
    """Concatenation of unequal widths before a dense (split into two denses and an add)."""
    rng = np.random.default_rng(seed)
    return _g(
        "concat_dense",
        (5,),
        [
            Node("dense", "a", ["x"], "ha", {}, {"kernel": grid_w(rng, (5, 4)), "bias": grid_w(rng, 4)}),
            Node("relu", "r", ["ha"], "hr"),
            Node("dense", "b", ["x"], "hb", {}, {"kernel": grid_w(rng, (5, 3)), "bias": grid_w(rng, 3)}),
            Node("concat", "cat", ["hr", "hb"], "c", {"axis": -1}),
            Node("quant", "qc", ["c"], "cq", {"q": q(1, 3, 2, "RND", "SAT")}),
            Node("dense", "d", ["cq"], "y", {}, {"kernel": grid_w(rng, (7, 2)), "bias": grid_w(rng, 2)}),
        ],
        "y",
        q(1, 1, 2),
    )


def batchnorm_quant(eps=1e-3, seed=0, relu=False, out=q(0, 2, 4, "RND_CONV", "SAT")) -> Graph:
    """QKeras-shaped: quantized dense -> float batch norm (non-dyadic scale) -> quantizer."""
    rng = np.random.default_rng(seed)
    var = rng.uniform(0.5, 2, 6)
    nodes = [
        Node("dense", "d", ["x"], "h", {}, {"kernel": grid_w(rng, (5, 6), f=4), "bias": grid_w(rng, 6, f=4)}),
        Node("scale_shift", "bn", ["h"], "hb", {}, {"scale": 0.8 / np.sqrt(var + eps), "shift": rng.normal(0, 0.3, 6)}),
    ]
    if relu:
        nodes.append(Node("relu", "r", ["hb"], "hr"))
    nodes.append(Node("quant", "q", [nodes[-1].output], "y", {"q": out}))
    return _g("batchnorm_quant", (5,), nodes, "y", q(1, 0, 6))


def standalone_scale_shift() -> Graph:
    """A dyadic scale_shift on the input (a standalone QBatchNormalization)."""
    return _g(
        "scale_shift",
        (4,),
        [
            Node(
                "scale_shift",
                "s",
                ["x"],
                "y",
                {},
                {"scale": np.array([0.5, -1.25, 2.0, 0.75]), "shift": np.array([0.125, 0, -1, 0.5])},
            )
        ],
        "y",
        q(1, 2, 3),
    )


def bipolar_mlp(seed=1) -> Graph:
    rng = np.random.default_rng(seed)
    s = lambda shape: np.where(rng.normal(size=shape) >= 0, 1.0, -1.0)  # noqa: E731
    return _g(
        "bipolar_mlp",
        (8,),
        [
            Node("dense", "d0", ["x"], "z0", {}, {"kernel": s((8, 12)), "bias": np.zeros(12)}),
            Node("bipolar", "b0", ["z0"], "h0", {"scale": 1.0}),
            Node("dense", "d1", ["h0"], "z1", {}, {"kernel": s((12, 3)), "bias": np.array([1.0, -2.0, 0.0])}),
            Node("bipolar", "b1", ["z1"], "y", {"scale": 1.0}),
        ],
        "y",
        q(1, 1, 1),
    )


HEAD_ATTRS = {"softmax": {"axis": -1}, "selu": {"alpha": SELU_ALPHA, "gamma": SELU_SCALE}}


def float_heads(head="softmax", seed=2) -> Graph:
    """A float MLP (Keras-shaped) with a softmax, sigmoid, tanh or selu head."""
    rng = np.random.default_rng(seed)
    n_out = 4 if head == "softmax" else 2
    return _g(
        f"float_{head}",
        (6,),
        [
            Node("dense", "d1", ["x"], "h", {}, {"kernel": rng.normal(0, 0.5, (6, 8)), "bias": rng.normal(0, 0.1, 8)}),
            Node("relu", "r", ["h"], "hr"),
            Node(
                "dense",
                "d2",
                ["hr"],
                "z",
                {},
                {"kernel": rng.normal(0, 0.5, (8, n_out)), "bias": rng.normal(0, 0.1, n_out)},
            ),
            Node(head, "act", ["z"], "y", HEAD_ATTRS.get(head, {})),
        ],
        "y",
    )


def avgpool_3x3(seed=0) -> Graph:
    """A 3x3 average (not a power of two) followed by a rounding quantizer: exact after the policy."""
    rng = np.random.default_rng(seed)
    return _g(
        "avgpool_3x3",
        (6, 6, 2),
        [
            Node("avgpool", "p", ["x"], "h", {"pool": (3, 3), "strides": (3, 3)}),
            Node("quant", "q", ["h"], "hq", {"q": q(1, 2, 4, "RND", "SAT")}),
            Node("flatten", "f", ["hq"], "hf"),
            Node("dense", "d", ["hf"], "y", {}, {"kernel": grid_w(rng, (8, 2)), "bias": np.zeros(2)}),
        ],
        "y",
        q(1, 2, 4),
    )


def tfc_like(seed=3) -> Graph:
    """TFC_1W2A-shaped: NCHW (1, 4, 4) input in [0, 1) -> 2x - 1 -> 2-bit narrow quant -> [bipolar
    dense -> float batch norm -> 2-bit narrow quant] x 2 -> bipolar dense (integer outputs)."""
    rng = np.random.default_rng(seed)
    s = lambda shape: np.where(rng.normal(size=shape) >= 0, 1.0, -1.0)  # noqa: E731
    q2 = q(1, 1, 0, "RND_CONV", "SAT_SYM")  # QONNX Quant 2 bits, narrow, scale 1
    nodes = [
        Node("flatten", "flat", ["x"], "xf"),
        Node("scale_shift", "pre", ["xf"], "xs", {}, {"scale": np.array(2.0), "shift": np.array(-1.0)}),
        Node("quant", "q0", ["xs"], "a0", {"q": q2}),
    ]
    a, n_in = "a0", 16
    for j, n_out in enumerate((12, 10)):
        var = rng.uniform(5, 40, n_out)
        nodes += [
            Node("dense", f"mm{j}", [a], f"z{j}", {}, {"kernel": s((n_in, n_out)), "bias": np.zeros(n_out)}),
            Node(
                "scale_shift",
                f"bn{j}",
                [f"z{j}"],
                f"b{j}",
                {},
                {"scale": rng.uniform(0.5, 1.5, n_out) / np.sqrt(var + 1e-5), "shift": rng.normal(0, 0.5, n_out)},
            ),
            Node("quant", f"q{j + 1}", [f"b{j}"], f"a{j + 1}", {"q": q2}),
        ]
        a, n_in = f"a{j + 1}", n_out
    nodes.append(Node("dense", "mm_out", [a], "y", {}, {"kernel": s((n_in, 5)), "bias": np.zeros(5)}))
    return _g("tfc_like", (4, 4, 1), nodes, "y", q(0, 0, 8), layout="NCHW")


def cnn_pool(seed=4) -> Graph:
    """qk_cnn_pool-shaped: quantized input -> valid conv -> quantized relu -> maxpool -> dense -> softmax."""
    rng = np.random.default_rng(seed)
    return _g(
        "cnn_pool",
        (6, 6, 1),
        [
            Node(
                "conv",
                "c",
                ["x"],
                "h",
                {"pads": ((0, 0), (0, 0))},
                {"kernel": grid_w(rng, (3, 3, 1, 3), f=5), "bias": grid_w(rng, 3, f=5)},
            ),
            Node("quant", "qr", ["h"], "hr", {"q": q(0, 2, 4, "RND_CONV", "SAT")}),
            Node("maxpool", "p", ["hr"], "hp", {"pool": (2, 2)}),
            Node("flatten", "f", ["hp"], "hf"),
            Node("dense", "d", ["hf"], "z", {}, {"kernel": grid_w(rng, (12, 4), f=5), "bias": grid_w(rng, 4, f=5)}),
            Node("softmax", "sm", ["z"], "y", {"axis": -1}),
        ],
        "y",
        q(1, 0, 7, "RND_CONV", "SAT"),
    )


ALL_EXACT = {
    "dense_relu": dense_relu,
    "quant_rnd_conv_sat": lambda: quant_edges("RND_CONV", "SAT"),
    "quant_rnd_wrap": lambda: quant_edges("RND", "WRAP"),
    "quant_trn_sat_sym": lambda: quant_edges("TRN", "SAT_SYM"),
    "conv2d_same": conv2d,
    "conv2d_stride2_asym": lambda: conv2d(pads=((0, 1), (1, 0)), strides=(2, 2)),
    "conv2d_depthwise": lambda: conv2d(groups=2),
    "conv1d_same": conv1d_same,
    "pad_transpose": pad_transpose,
    "maxpool": pools,
    "avgpool_2x2": lambda: pools("avgpool"),
    "avgpool_3x3": avgpool_3x3,
    "global_pools": global_pools,
    "merges": merges,
    "concat_dense": concat_dense,
    "batchnorm_quant": batchnorm_quant,
    "batchnorm_relu_quant": lambda: batchnorm_quant(relu=True, out=q(0, 1, 3, "RND", "SAT")),
    "scale_shift": standalone_scale_shift,
    "bipolar_mlp": bipolar_mlp,
    "tfc_like": tfc_like,
}


# ----------------------------------------------------------------------------- end-to-end models (several rules each)


def e2e_cnn(seed=5) -> Graph:
    """conv 'same' + relu -> depthwise conv (asymmetric pads) -> 3x3 average + quantizer -> dense ->
    float softmax head (table softmax)."""
    rng = np.random.default_rng(seed)
    return _g(
        "e2e_cnn",
        (6, 6, 2),
        [
            Node(
                "conv",
                "c1",
                ["x"],
                "h1",
                {"pads": ((1, 1), (1, 1))},
                {"kernel": grid_w(rng, (3, 3, 2, 3)), "bias": grid_w(rng, 3)},
            ),
            Node("relu", "r1", ["h1"], "a1"),
            Node("quant", "q1", ["a1"], "b1", {"q": q(0, 3, 3, "RND_CONV", "SAT")}),
            Node(
                "conv",
                "dw",
                ["b1"],
                "h2",
                {"pads": ((0, 1), (1, 0)), "groups": 3},
                {"kernel": grid_w(rng, (2, 2, 1, 3)), "bias": grid_w(rng, 3)},
            ),
            Node("avgpool", "p", ["h2"], "h3", {"pool": (3, 3)}),
            Node("quant", "q3", ["h3"], "b3", {"q": q(1, 3, 3, "RND", "SAT")}),
            Node("flatten", "f", ["b3"], "b4"),
            Node("dense", "d", ["b4"], "z", {}, {"kernel": grid_w(rng, (12, 4)), "bias": grid_w(rng, 4)}),
            Node("softmax", "sm", ["z"], "y", {"axis": -1}),
        ],
        "y",
        q(1, 1, 3),
    )


def e2e_mlp(seed=6) -> Graph:
    """quantized dense -> batch norm (thresholds when max_enumerate is small) -> 2-bit quantizer; a
    second branch; concat of unequal widths -> dense -> tanh head (one output: sign agreement)."""
    rng = np.random.default_rng(seed)
    var = rng.uniform(0.5, 2, 6)
    return _g(
        "e2e_mlp",
        (5,),
        [
            Node("dense", "d1", ["x"], "h1", {}, {"kernel": grid_w(rng, (5, 6), f=3), "bias": grid_w(rng, 6, f=3)}),
            Node(
                "scale_shift",
                "bn",
                ["h1"],
                "hb",
                {},
                {"scale": 1 / np.sqrt(var + 1e-3), "shift": rng.normal(0, 0.3, 6)},
            ),
            Node("quant", "q1", ["hb"], "a1", {"q": q(0, 1, 1, "RND_CONV", "SAT")}),
            Node("dense", "d2", ["x"], "h2", {}, {"kernel": grid_w(rng, (5, 3), f=2), "bias": grid_w(rng, 3, f=2)}),
            Node("relu", "r2", ["h2"], "a2"),
            Node("concat", "cat", ["a1", "a2"], "c", {"axis": -1}),
            Node(
                "dense",
                "d3",
                ["c"],
                "z",
                {},
                {"kernel": grid_w(rng, (9, 1), f=3, lim=0.5), "bias": grid_w(rng, 1, f=3)},
            ),
            Node("tanh", "t", ["z"], "y"),
        ],
        "y",
        q(1, 1, 4),
    )


def e2e_merges(seed=7) -> Graph:
    """pad + transpose (0/1 denses), two branches merged by add/sub/mul/max, equal-width concat,
    global pools over a conv1d, standalone batch norm (dyadic)."""
    rng = np.random.default_rng(seed)
    d = lambda n, i, o: Node("dense", n, [i], o, {}, {"kernel": grid_w(rng, (6, 4)), "bias": grid_w(rng, 4)})  # noqa: E731
    return _g(
        "e2e_merges",
        (4, 3),
        [
            Node(
                "conv", "c", ["x"], "h", {"pads": ((1, 2),)}, {"kernel": grid_w(rng, (4, 3, 2)), "bias": grid_w(rng, 2)}
            ),
            Node("global_maxpool", "gm", ["h"], "m"),
            Node("global_avgpool", "ga", ["h"], "a"),
            Node("transpose", "t", ["x"], "xt", {"perm": (1, 0)}),
            Node("pad", "pd", ["xt"], "xp", {"pads": ((0, 0),)}),
            Node("flatten", "f", ["xp"], "xf"),
            Node("concat", "cat0", ["xf"], "xf2", {"axis": -1}),
            Node("dense", "k", ["xf2"], "u", {}, {"kernel": grid_w(rng, (12, 6)), "bias": grid_w(rng, 6)}),
            d("da", "u", "ua"),
            d("db", "u", "ub"),
            Node("add", "add", ["ua", "ub"], "s"),
            Node("sub", "sub", ["ua", "ub"], "dd"),
            Node("mul", "mul", ["s", "dd"], "pm"),
            Node("max", "max", ["pm", "ua"], "mx"),
            Node("concat", "cat", ["m", "a"], "ma"),
            Node(
                "scale_shift",
                "bn",
                ["ma"],
                "mb",
                {},
                {"scale": np.array([0.5, -1.5, 2.0, 0.25]), "shift": np.array([0.25, 0, -1, 0.5])},
            ),
            Node("add", "join", ["mx", "mb"], "y"),
        ],
        "y",
        q(1, 1, 2),
    )


def hgq_like(seed=8) -> Graph:
    """hgq_mnist_homogeneous-shaped: (6, 6) input quantized ufixed<5,1> RND (user data off that grid)
    -> reshape -> conv 3x3 valid -> fixed<7,3> TRN WRAP -> relu -> ufixed<6,2> -> maxpool 2 -> dense."""
    rng = np.random.default_rng(seed)
    return _g(
        "hgq_like",
        (6, 6),
        [
            Node("reshape", "rs", ["x"], "x3", {"shape": (6, 6, 1)}),
            Node("conv", "c", ["x3"], "h", {}, {"kernel": grid_w(rng, (3, 3, 1, 2)), "bias": grid_w(rng, 2, f=5)}),
            Node("quant", "qc", ["h"], "hq", {"q": q(1, 2, 4)}),
            Node("relu", "r", ["hq"], "hr"),
            Node("quant", "qr", ["hr"], "hrq", {"q": q(0, 2, 4)}),
            Node("maxpool", "p", ["hrq"], "hp", {"pool": (2, 2)}),
            Node("flatten", "f", ["hp"], "hf"),
            Node("dense", "d", ["hf"], "z", {}, {"kernel": grid_w(rng, (8, 3)), "bias": grid_w(rng, 3, f=4)}),
            Node("quant", "qo", ["z"], "y", {"q": q(1, 6, 3)}),
        ],
        "y",
        q(0, 1, 4, "RND", "WRAP"),
    )
