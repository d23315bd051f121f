"""HGQ v1 proxy models (one Keras 2 .h5 with `FixedPointQuantizer` layers) -> import-graph nodes.

Semantics (calad0i/HGQ `src/HGQ/proxy/fixed_point_quantizer.py`, commit
02d4b7381d61afb527165b8cefaa463bdaf57cfb, `gfixed_quantizer`; checked bit for bit against
hgq_mnist_homogeneous's reference in ../shared/peer-models):

    f = bits - integers;  v = RND(x * 2**f);  v = SAT(v, keep_negative, bits);  y = v / 2**f * (bits != 0)

with per-element int8 arrays keep_negative, bits, integers (the layer's weights, of the config's
`shape`, broadcast against the input *including* the batch axis) and one rounding (`RND`: TRN,
RND = half up, RND_CONV = half to even, TRN_ZERO, RND_ZERO, RND_MIN_INF, RND_INF) and overflow
(`SAT`: WRAP, SAT, SAT_SYM, SAT_ZERO) per layer. HGQ's `integers` count the sign bit (ap_fixed's
I), hgq2's i does not: i = integers - keep_negative. A zero-bit element gives 0. The modes come
from the quantizer's config, never from `overrides` (hls4ml settings, which may disagree).
The proxy's Dense/Conv layers are plain Keras layers whose stored weights are already quantized.
"""

from __future__ import annotations

import numpy as np

from trigger_ml.fixed import OVERFLOW, ROUNDING
from trigger_ml.interop.ir import Quant
from trigger_ml.interop.keras_build import Call

CLASSES = ("FixedPointQuantizer", "HGQ>FixedPointQuantizer")


def fixed_point_quantizer(c: Call, xs: list[str] | None) -> str | None:
    cfg = c.config
    rnd, sat = str(cfg.get("RND", "TRN")).upper(), str(cfg.get("SAT", "WRAP")).upper()
    c.require("keep_negative", "bits", "integers")
    if rnd not in ROUNDING:
        c.unsupported(f"rounding {rnd!r}", ", ".join(ROUNDING))
    if sat not in OVERFLOW:
        c.unsupported(f"overflow {sat!r}", ", ".join(OVERFLOW))
    if rnd not in ROUNDING or sat not in OVERFLOW or xs is None:
        return None
    shape = c.shape(xs[0])
    arrays = [c.weight(n, None) for n in ("keep_negative", "bits", "integers")]
    if any(a is None for a in arrays):
        return None
    k, b, i = (np.asarray(a) for a in arrays)
    try:
        k, b, i = (_batchless(a, shape) for a in (k, b, i))
    except ValueError as exc:
        c.schema(f"quantizer arrays do not broadcast against the input {shape}: {exc}")
        return None
    if np.any((k != 0) & (k != 1)) or np.any(b < 0):
        c.schema("keep_negative must be 0/1 and bits >= 0")
        return None
    zero = b == 0
    k, i, f = np.where(zero, 0, k), np.where(zero, 0, i - k), np.where(zero, 0, b - i)
    q = Quant(k.astype(np.int64), i.astype(np.int64), f.astype(np.int64), rnd, sat)
    return c.emit("quant", xs, attrs={"q": q})


def _batchless(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An array broadcast against (batch, *shape) -> the same broadcast against `shape`."""
    if a.ndim == len(shape) + 1:
        if a.shape[0] != 1:
            raise ValueError(f"a per-event axis of {a.shape[0]}")
        a = a[0]
    np.broadcast_shapes(a.shape, shape)
    if np.broadcast_shapes(a.shape, shape) != tuple(shape):
        raise ValueError(f"shape {a.shape}")
    return a


LAYERS = {name: fixed_point_quantizer for name in CLASSES}
ALTERNATIVES = {
    "UnaryLUT": "not supported: HGQ v1's table activation; re-export with a plain Activation and a FixedPointQuantizer",
    "HGQ>UnaryLUT": "not supported: HGQ v1's table activation; re-export with a plain Activation and a FixedPointQuantizer",
}
