"""HGQ v1 proxy models (`interop.hgq1_front`) against the numpy formula of HGQ's quantizer.

Reference: calad0i/HGQ src/HGQ/proxy/fixed_point_quantizer.py (commit
02d4b7381d61afb527165b8cefaa463bdaf57cfb), `gfixed_quantizer`:
    scale = 2**(bits - integer_bits); q = SAT(RND(x * scale), keep_negative, bits); y = q / scale * (bits != 0)
with RND: TRN floor(x), RND floor(x + 0.5), RND_CONV round half to even, TRN_ZERO floor(|x|) sign(x),
RND_ZERO -floor(-|x| + 0.5) sign(x), RND_MIN_INF -floor(-x + 0.5), RND_INF floor(|x| + 0.5) sign(x);
SAT (high = 2**(bits - k) - 1, low = -(high + 1) k): SAT clip(low, high), SAT_SYM clip(-high k, high),
SAT_ZERO x * (low <= x <= high), WRAP floormod(x - low, high - low + 1) + low.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from trigger_ml.errors import UnsupportedError
from trigger_ml.interop.keras_front import file_kind, read_keras2_h5

from .kfiles import k2_input, k2_layer, k2_model, write_k2_weights

RND = {
    "TRN": np.floor,
    "RND": lambda v: np.floor(v + 0.5),
    "RND_CONV": np.round,
    "TRN_ZERO": lambda v: np.floor(np.abs(v)) * np.sign(v),
    "RND_ZERO": lambda v: -np.floor(-np.abs(v) + 0.5) * np.sign(v),
    "RND_MIN_INF": lambda v: -np.floor(-v + 0.5),
    "RND_INF": lambda v: np.floor(np.abs(v) + 0.5) * np.sign(v),
}


def _sat(mode, v, k, b):
    high = 2.0 ** (b - k) - 1
    low = -(high + 1) * k
    if mode == "SAT":
        return np.clip(v, low, high)
    if mode == "SAT_SYM":
        return np.clip(v, -high * k, high)
    if mode == "SAT_ZERO":
        return v * ((v <= high) & (v >= low))
    return np.mod(v - low, high - low + 1) + low


def gfixed(x, k, b, i, rnd, sat):
    scale = 2.0 ** (b - i)
    q = _sat(sat, RND[rnd](x * scale), k, b)
    return q / scale * (b != 0)


def hgq_file(path, arrays, modes, w, b):
    """Input (4, 3) -> FixedPointQuantizer (per element) -> Dense 5 (quantized weights) -> FixedPointQuantizer
    (per output) -> relu -> FixedPointQuantizer (one format)."""
    (rnd0, sat0), (rnd1, sat1) = modes
    overrides = {"layers": {"q_in": {"result_t": "fixed<8,3,TRN,WRAP>"}}}  # hls4ml settings: not the arithmetic
    layers = [
        k2_input("x", (4, 3)),
        k2_layer(
            "FixedPointQuantizer", "q_in", "x", RND=rnd0, SAT=sat0, shape=[1, 4, 3], overrides=overrides, fusible=False
        ),
        k2_layer("Dense", "d", "q_in", units=5, activation="linear", use_bias=True),
        k2_layer("FixedPointQuantizer", "q_d", "d", RND=rnd1, SAT=sat1, shape=[1, 5], overrides={"layers": {}}),
        k2_layer("Activation", "relu", "q_d", activation="relu"),
        k2_layer("FixedPointQuantizer", "q_out", "relu", RND="TRN", SAT="WRAP", shape=[1], overrides={"layers": {}}),
    ]
    weights = {"d": {"kernel": w, "bias": b}}
    for name, (k, bits, ints) in arrays.items():
        weights[name] = {
            "keep_negative": k.astype(np.int8),
            "bits": bits.astype(np.int8),
            "integers": ints.astype(np.int8),
        }
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(k2_model(layers, ["x"], ["q_out"]))
        f.attrs["keras_version"] = "2.13.1"
        write_k2_weights(f.create_group("model_weights"), [ly["name"] for ly in layers], weights, "object", True)
    return path


def arrays(seed):
    rng = np.random.default_rng(seed)
    k0 = rng.integers(0, 2, (1, 4, 3))
    b0 = rng.integers(0, 7, (1, 4, 3))
    b0[0, 0, 0] = 0  # a zero-bit element: always 0
    i0 = rng.integers(-1, 3, (1, 4, 3))
    k1, b1, i1 = np.ones(5), rng.integers(3, 9, 5), rng.integers(1, 4, 5)
    return {"q_in": (k0, b0, i0), "q_d": (k1, b1, i1), "q_out": (np.zeros(1), np.array([6]), np.array([3]))}


MODES = [
    ("TRN", "WRAP"),
    ("RND", "SAT"),
    ("RND_CONV", "SAT_SYM"),
    ("TRN_ZERO", "SAT_ZERO"),
    ("RND_ZERO", "WRAP"),
    ("RND_MIN_INF", "SAT"),
    ("RND_INF", "SAT_SYM"),
]


@pytest.mark.parametrize("j", range(len(MODES)), ids=[f"{r}-{s}" for r, s in MODES])
def test_heterogeneous_proxy_equals_hgq(tmp_path, j):
    modes, modes_d = MODES[j], MODES[(j + 3) % len(MODES)]
    a = arrays(j)
    rng = np.random.default_rng(1)
    w = (rng.integers(-8, 8, (3, 5)) / 8.0).astype(np.float32)  # already on the weights' grid, as the proxy stores them
    b = (rng.integers(-4, 4, 5) / 4.0).astype(np.float32)
    path = hgq_file(tmp_path / "proxy.h5", a, [modes, modes_d], w, b)
    assert file_kind(path) == "hgq1"
    g = read_keras2_h5(path)
    x = rng.integers(-96, 96, (400, 4, 3)) / 16.0  # many ties (x * 2**f = n + 1/2) and overflows
    h = gfixed(x, *(np.asarray(v, np.float64)[0] for v in a["q_in"]), *modes)
    h = gfixed(h @ w.astype(np.float64) + b, *(np.asarray(v, np.float64) for v in a["q_d"]), *modes_d)
    y = gfixed(np.maximum(h, 0), *(np.asarray(v, np.float64) for v in a["q_out"]), "TRN", "WRAP")
    np.testing.assert_array_equal(g.evaluate(x)[0], y)
    assert g.inputs[0].q is not None and g.inputs[0].q.rounding == modes[0]  # the config's RND, not `overrides`
    assert len(np.unique(y)) > 5


def test_zero_bit_elements_give_zero(tmp_path):
    a = arrays(3)
    a["q_in"][1][...] = 0
    w, b = np.ones((3, 5), np.float32), np.zeros(5, np.float32)
    g = read_keras2_h5(hgq_file(tmp_path / "p.h5", a, [("TRN", "WRAP"), ("TRN", "WRAP")], w, b))
    assert np.all(g.evaluate(np.full((2, 4, 3), 1.5))[0] == 0)


def test_wrap_sm_and_unknown_hgq_layers_are_refused(tmp_path):
    a = arrays(4)
    w, b = np.ones((3, 5), np.float32), np.zeros(5, np.float32)
    path = hgq_file(tmp_path / "p.h5", a, [("TRN", "WRAP_SM"), ("RND_HALF", "WRAP")], w, b)
    with pytest.raises(UnsupportedError) as e:
        read_keras2_h5(path)
    assert "WRAP_SM" in str(e.value) and "RND_HALF" in str(e.value) and "2 unsupported" in str(e.value)
