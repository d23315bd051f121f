"""Model builders from a card: the hgq2-native quantized model and its float twin.

Layers a card may use are the entries of `trigger_ml.layers.KINDS` (the one table): each entry
builds its hgq2 layer and its float twin's layer. Both builds share layer names, so the twin's
weights map onto the quantized model by name.

Inputs are the data's integer grids with the binary point moved so values are O(1) (same bits,
a power-of-two scale, exact in float32): a feature of format ufixed<W, I> enters as
ufixed<W, 0> (value / 2**I); an image of b-bit counts as ufixed<b, 0> (counts / 2**b). The
input quantizer is frozen on exactly that grid (rounding TRN, overflow WRAP: nothing is lost or
invented, and da4ml takes it). A card may move an image's binary point with
`image_integer_bits` (ufixed<b, I>: counts / 2**(b - I)).

Anomaly models end in their score, computed in the graph: diff = x - reconstruction
(QSubtract; the reconstruction saturates onto the input grid), diff**2 (QMultiply) rounded to
SCORE_FRAC_BITS fractional bits, summed by a frozen all-ones QDense(1). The score is 81 x the
mean squared error of the quantized reconstruction, to 2**-SCORE_FRAC_BITS per crystal; the
card must keep it within 24 bits so that float32 Keras is exact.

The card's `anomaly` section changes three things, neither the score's structure nor its one
output. `masked_centre` keeps the first layer's kernel rows of the central crystals at zero (as
pruned weights), so the model predicts those crystals from their surroundings.
`one_sided_centre` gives the square's inputs a frozen per-element quantizer, unsigned and
saturating on the masked crystals (diff -> max(diff, 0), exact), signed elsewhere.
`score_weights: standardised` sets the frozen score weights after training to powers of two
2**-k <= 1 from the normal training windows' mean squared error per crystal
(`standardised_weights`) and rounds crystal i's squared error to 2**(k_i - SCORE_FRAC_BITS):
every weighted term stays on the 2**-SCORE_FRAC_BITS grid and below the all-ones bound, so the
24-bit check above still holds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trigger_ml.config import ModelCard
from trigger_ml.data.dataset import Dataset
from trigger_ml.data.features import FEATURES
from trigger_ml.errors import SchemaError
from trigger_ml.fixed import Fixed, Grid
from trigger_ml.layers import KINDS, check_spec, layer_name

SCORE_FRAC_BITS = 6
FLOAT32_EXACT_BITS = 24


# --------------------------------------------------------------------------- inputs


def input_shift(card: ModelCard, ds_meta: dict[str, Any]) -> np.ndarray:
    """Power of two dividing each raw input to give the model input."""
    if card.input == "features":
        return np.array([2.0**fmt.integer for fmt in FEATURES.values()], dtype=np.float32)
    return np.float32(2.0 ** (int(ds_meta.get("bits", 10)) - card.image_integer_bits))


def model_inputs(card: ModelCard, ds: Dataset) -> np.ndarray:
    """The model's input array for a data set (exact: a power-of-two scale of integer grids)."""
    if card.input == "tensor":
        raise SchemaError(
            f"{card.name}: an imported model does not read ECAL windows",
            "verify it without --data (fuzzed words of its input format and its own reference)",
        )
    if card.input == "features":
        return (ds.features / input_shift(card, ds.meta)).astype(np.float32)
    x = ds.images.astype(np.float32) / input_shift(card, ds.meta)
    n, w, _ = ds.images.shape
    return x.reshape(n, w, w, 1) if card.input == "image" else x.reshape(n, w * w)


def input_formats(card: ModelCard, ds_meta: dict[str, Any], shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Integer and fractional bits of each model input (unsigned), broadcast to `shape`."""
    if card.input == "features":
        frac = np.array([fmt.width for fmt in FEATURES.values()], dtype=np.float32)
        return np.zeros_like(frac), frac
    frac = float(int(ds_meta.get("bits", 10)) - card.image_integer_bits)
    return np.full(shape, card.image_integer_bits, np.float32), np.full(shape, frac, np.float32)


def masked_crystals(card: ModelCard, ds_meta: dict[str, Any]) -> np.ndarray:
    """Boolean mask of the image_flat inputs hidden from the encoder (`anomaly.masked_centre`)."""
    k = card.anomaly.masked_centre
    w = int(ds_meta.get("window", 9))
    if k and (
        card.task != "anomaly"
        or card.input != "image_flat"
        or card.layers[0].get("type") != "dense"
        or k % 2 == 0
        or k > w
    ):
        raise SchemaError(
            f"{card.name}: anomaly.masked_centre needs an anomaly model on image_flat whose "
            f"first layer is dense, and an odd size up to the window (got {k})"
        )
    if card.anomaly.one_sided_centre and not k:
        raise SchemaError(f"{card.name}: anomaly.one_sided_centre needs anomaly.masked_centre")
    ii, jj = np.divmod(np.arange(w * w), w)
    return (np.abs(ii - w // 2) <= k // 2) & (np.abs(jj - w // 2) <= k // 2) if k else np.zeros(w * w, bool)


def input_masks(card: ModelCard, ds_meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """Kernel masks (by layer name) hiding the masked crystals from an anomaly model's first
    layer: those kernel rows stay exactly zero (as pruned weights do), so the model must
    reconstruct those crystals from their surroundings."""
    hidden = masked_crystals(card, ds_meta)
    if not hidden.any():
        return {}
    first = card.layers[0]
    mask = np.ones((hidden.size, first["units"]), np.float32)
    mask[hidden] = 0.0
    return {layer_name(first, 0): mask}


def input_grid(card: ModelCard, ds_meta: dict[str, Any]) -> Grid:
    """The formats of the model's flattened inputs: its input quantizer's grid (an imported
    model's grid, possibly signed, is in its run's metrics.json)."""
    if card.input == "tensor":
        if "input_grid" not in ds_meta:
            raise SchemaError(
                f"{card.name}: input 'tensor' needs data.input_grid in the run's metrics.json",
                "re-create the run with `trigger-ml import`",
            )
        return Grid.from_json(ds_meta["input_grid"])
    shape = input_shape(card, ds_meta)
    i_bits, f_bits = input_formats(card, ds_meta, shape)
    i_bits, f_bits = np.broadcast_to(i_bits, shape).ravel(), np.broadcast_to(f_bits, shape).ravel()
    return Grid.of([Fixed(False, int(i), int(f)) for i, f in zip(i_bits, f_bits)])


def input_shape(card: ModelCard, ds_meta: dict[str, Any]) -> tuple[int, ...]:
    if card.input == "tensor":
        if "input_shape" not in ds_meta:
            raise SchemaError(
                f"{card.name}: input 'tensor' needs data.input_shape in the run's metrics.json",
                "re-create the run with `trigger-ml import`",
            )
        return tuple(int(d) for d in ds_meta["input_shape"])
    w = int(ds_meta.get("window", 9))
    return {"features": (len(FEATURES),), "image": (w, w, 1), "image_flat": (w * w,)}[card.input]


# --------------------------------------------------------------------------- builders


def build_quantized(card: ModelCard, ds_meta: dict[str, Any]):
    """The hgq2-native quantized model of a card."""
    import keras
    from hgq.config import LayerConfigScope, QuantizerConfig, QuantizerConfigScope
    from hgq.layers import QDense, QMultiply, QSubtract, Quantizer

    q = card.quantization
    shape = input_shape(card, ds_meta)
    i_bits, f_bits = input_formats(card, ds_meta, shape)
    # one frozen format per input element (kif shaped like the input): hls4ml 1.3's DA kernels
    # cannot broadcast a scalar quantizer's kif over a Dense input ("Matrix shapes do not match")
    het = {"homogeneous_axis": (0,)}
    in_conf = QuantizerConfig(
        "kif",
        "datalane",
        k0=0,
        i0=keras.initializers.Constant(i_bits if card.input == "features" else float(i_bits.flat[0])),
        f0=keras.initializers.Constant(f_bits if card.input == "features" else float(f_bits.flat[0])),
        round_mode="TRN",
        overflow_mode="WRAP",
        trainable=False,
        **het,
    )
    # weights saturate symmetrically, biases wrap (their ranges are traced); both learn their widths
    weights = ((q.weight_bits, q.weight_integer, "SAT_SYM", "weight"), (q.bias_bits, q.bias_integer, "WRAP", "bias"))
    scopes = (
        *(
            QuantizerConfigScope(place=place, q_type="kbi", b0=b, i0=i, overflow_mode=ovf, trainable=q.weight_trainable)
            for b, i, ovf, place in weights
        ),
        QuantizerConfigScope(
            place="datalane", default_q_type="kif", f0=q.act_frac_bits, overflow_mode="WRAP", trainable=q.act_trainable
        ),
        LayerConfigScope(enable_ebops=True, beta0=q.beta[0]),
    )
    with scopes[0], scopes[1], scopes[2], scopes[3]:
        inp = keras.Input(shape, name="x")
        h = inp
        for i, raw in enumerate(card.layers):
            spec = check_spec(raw, i, card.name)
            kind = KINDS[spec["type"]]
            if i == 0 and not kind.takes_input_quantizer:  # the input grid needs a quantizer of its own
                h = Quantizer(in_conf, name="input_quantizer")(h)
            h = kind.quantized(spec, layer_name(spec, i), in_conf if i == 0 and kind.takes_input_quantizer else None)(h)
        if card.task == "anomaly":
            score_bits = 2 * int(i_bits.flat[0]) + 1 + SCORE_FRAC_BITS + int(np.ceil(np.log2(np.prod(shape))))
            if score_bits > FLOAT32_EXACT_BITS:
                raise SchemaError(
                    f"{card.name}: the anomaly score needs {score_bits} bits, over {FLOAT32_EXACT_BITS}",
                    "lower image_integer_bits so float32 Keras stays exact",
                )
            rec_conf = QuantizerConfig(
                "kif",
                "datalane",
                k0=0,
                i0=float(i_bits.flat[0]),
                f0=float(f_bits.flat[0]),
                overflow_mode="SAT",
                trainable=False,
                **het,
            )
            d = QSubtract(iq_confs=[in_conf, rec_conf], name="diff")([inp, h])
            if card.anomaly.one_sided_centre:  # the masked crystals' diff enters unsigned, saturating: max(diff, 0)
                signed = (~masked_crystals(card, ds_meta)).astype(np.float32)
                d_conf = QuantizerConfig(
                    "kif",
                    "datalane",
                    k0=keras.initializers.Constant(signed),
                    i0=float(i_bits.flat[0]),
                    f0=float(f_bits.flat[0]),
                    round_mode="TRN",
                    overflow_mode="SAT",
                    trainable=False,
                    **het,
                )
                sq = QMultiply(iq_confs=[d_conf, d_conf], name="square")([d, d])
            else:
                sq = QMultiply(enable_iq=False, name="square")([d, d])
            sq_conf = QuantizerConfig(
                "kif",
                "datalane",
                k0=0,
                i0=2 * float(i_bits.flat[0]) + 1,
                f0=SCORE_FRAC_BITS,
                overflow_mode="WRAP",
                trainable=False,
                **het,
            )
            # weights 2**-k (k <= max_weight_shift; all ones unless standardised, set after training)
            shift = card.anomaly.max_weight_shift if card.anomaly.score_weights == "standardised" else 0
            if not 0 <= shift <= SCORE_FRAC_BITS:
                raise SchemaError(
                    f"{card.name}: anomaly.max_weight_shift must be within 0..{SCORE_FRAC_BITS}",
                    "a weight 2**-k rounds its crystal's squared error to 2**(k - SCORE_FRAC_BITS)",
                )
            ones = QuantizerConfig("kif", "weight", k0=0, i0=1, f0=shift, trainable=False)
            h = QDense(
                1,
                use_bias=False,
                kernel_initializer="ones",
                kq_conf=ones,
                iq_conf=sq_conf,
                enable_ebops=False,
                trainable=False,
                name="score",
            )(sq)
    return keras.Model(inp, h, name=card.name)


def build_float(card: ModelCard, ds_meta: dict[str, Any]):
    """The float twin: same layers and names, no quantizers."""
    import keras

    shape = input_shape(card, ds_meta)
    inp = keras.Input(shape, name="x")
    h = inp
    for i, raw in enumerate(card.layers):
        spec = check_spec(raw, i, card.name)
        h = KINDS[spec["type"]].float(spec, layer_name(spec, i))(h)
    one_sided = None
    if card.task == "anomaly":
        d = keras.layers.Subtract(name="diff")([inp, h])
        if card.anomaly.one_sided_centre:  # diff + relu(-diff) on the masked crystals: max(diff, 0)
            one_sided = keras.layers.Dense(
                shape[0], use_bias=False, activation="relu", trainable=False, name="centre_deficit"
            )
            d = keras.layers.Add(name="one_sided")([d, one_sided(d)])
        sq = keras.layers.Multiply(name="square")([d, d])
        h = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones", trainable=False, name="score")(sq)
    model = keras.Model(inp, h, name=f"{card.name}_float")
    if one_sided is not None:
        one_sided.kernel.assign(-np.diag(masked_crystals(card, ds_meta)).astype(np.float32))
    return model


def standardised_weights(card: ModelCard, sq_mean: np.ndarray) -> np.ndarray:
    """Score weights 2**-k from the normal training windows' mean squared error per crystal.

    w_i = (max(sq_mean_i, 2**-SCORE_FRAC_BITS) ** -weight_power) relative to the largest, rounded
    to the nearest power of two (in log2) within 2**-max_weight_shift .. 1.
    """
    a = card.anomaly
    w = np.maximum(sq_mean.astype(np.float64), 2.0**-SCORE_FRAC_BITS) ** -a.weight_power
    k = np.clip(np.round(-np.log2(w / w.max())), 0, a.max_weight_shift)
    return 2.0**-k


def set_score_weights(card: ModelCard, model, x_normal: np.ndarray) -> np.ndarray:
    """Set the frozen score layer of an anomaly model from normal (training) windows; return the weights.

    For `ones` the weights stay 1. For `standardised`, crystal i weighs 2**-k_i and its squared
    error is rounded to 2**(k_i - SCORE_FRAC_BITS), so every weighted term, and the score, stays on
    the 2**-SCORE_FRAC_BITS grid with weights <= 1: the 24-bit bound of the all-ones score holds.
    """
    import keras

    score = model.get_layer("score")
    if card.anomaly.score_weights == "ones":
        return np.ones(score.kernel.shape[0])
    sq = keras.Model(model.inputs, model.get_layer("square").output)
    sq_mean = np.asarray(sq.predict(x_normal, batch_size=8192, verbose=0), np.float64).mean(axis=0)
    w = standardised_weights(card, sq_mean)
    score.kernel.assign(w[:, None].astype(np.float32))
    iq = getattr(score, "iq", None)
    if iq is not None:  # the quantized model: round each squared error to its term's grid
        f = iq.quantizer._f
        f.assign(np.reshape(SCORE_FRAC_BITS + np.log2(w), f.shape).astype(f.dtype))
    return w


def reconstruction_model(model):
    """For an anomaly model: the sub-model from the input to the reconstruction (decoder output)."""
    import keras

    diff = model.get_layer("diff")
    rec = diff.input[1] if isinstance(diff.input, (list, tuple)) else diff._inbound_nodes[0].input_tensors[1]
    return keras.Model(model.inputs, rec)


def trainable_layers(card: ModelCard) -> list[str]:
    """Names of the layers with weights (the ones pruned and copied from the float twin)."""
    return [layer_name(s, i) for i, s in enumerate(card.layers) if KINDS[s["type"]].weights]


def copy_weights(src, dst, card: ModelCard) -> None:
    """Copy each weighted layer's variables (its kind's `weights`) from the twin `src` by layer name
    (hgq layers carry extra quantizer variables, which stay)."""
    for i, s in enumerate(card.layers):
        a, b = src.get_layer(layer_name(s, i)), dst.get_layer(layer_name(s, i))
        for var in KINDS[s["type"]].weights:
            if getattr(a, var, None) is not None and getattr(b, var, None) is not None:
                getattr(b, var).assign(getattr(a, var))
