"""Tiny trainings (hundreds of windows, two epochs) whose properties must hold exactly."""

import json

import numpy as np
import pytest

from trigger_ml.errors import SchemaError
from trigger_ml.train.fit import load_model, predict, train
from trigger_ml.train.models import (
    SCORE_FRAC_BITS,
    masked_crystals,
    model_inputs,
    reconstruction_model,
)

from ..conftest import tiny_card

pytestmark = pytest.mark.slow


def _qlayers(model):
    return [lay for lay in model.layers if hasattr(lay, "qkernel") and lay.trainable]


@pytest.mark.parametrize("name", ["eg_mlp", "eg_cnn", "ad_autoencoder"])
def test_quantized_weights_lie_on_their_grid(trained, name):
    from keras import ops

    _, run, _ = trained(name)
    model = load_model(run / "model.keras")
    for lay in _qlayers(model):
        qk = ops.convert_to_numpy(lay.qkernel)
        q = lay.kq.quantizer
        k, i, f = (ops.convert_to_numpy(q.bw_mapper.bw_to_x(v, qk.shape)) for v in q.kif)
        scaled = qk.astype(np.float64) * 2.0**f
        np.testing.assert_array_equal(scaled, np.round(scaled))
        assert np.all(qk >= -k * 2.0**i) and np.all(qk <= 2.0**i - 2.0**-f)


@pytest.mark.parametrize("name", ["eg_mlp", "ad_autoencoder"])
def test_pruned_weights_are_zero_and_sparsity_reaches_target(trained, name):
    from keras import ops

    card, run, metrics = trained(name)
    model = load_model(run / "model.keras")
    pruned = [n for n, t in metrics["sparsity_target"].items() if t > 0]
    assert pruned
    for lay in _qlayers(model):
        if lay.name not in pruned:
            continue
        kernel = ops.convert_to_numpy(lay.kernel)
        target = card.pruning.target(lay.name)
        assert abs((kernel == 0).mean() - target) <= 0.01, lay.name
        np.testing.assert_array_equal(ops.convert_to_numpy(lay.qkernel)[kernel == 0], 0.0)
        assert metrics["sparsity"][lay.name] >= target - 0.01


def test_anomaly_score_is_the_squared_error_of_its_own_quantized_reconstruction(trained, small_data):
    card, run, metrics = trained("ad_autoencoder")
    model = load_model(run / "model.keras")
    x = model_inputs(card, small_data)[:2000]
    score = predict(model, x)[:, 0].astype(np.float64)
    rec = np.asarray(reconstruction_model(model).predict(x, verbose=0), dtype=np.float64)
    bits = small_data.meta["bits"]
    grid = 2.0 ** (bits - card.image_integer_bits)
    rec_q = np.clip(np.floor(rec * grid + 0.5), 0, 2**bits - 1) / grid  # the input grid, saturating
    diff = x.astype(np.float64) - rec_q
    if card.anomaly.one_sided_centre:  # the masked crystals count only data above the reconstruction
        hidden = masked_crystals(card, small_data.meta)
        diff[:, hidden] = np.maximum(diff[:, hidden], 0.0)
    sq = diff**2
    w = np.asarray(metrics["score_weights"])  # powers of two <= 1; each weighted term on the score grid
    assert set(np.log2(w)) <= set(range(-card.anomaly.max_weight_shift, 1))
    sq_q = np.floor(w * sq * 2.0**SCORE_FRAC_BITS + 0.5) / 2.0**SCORE_FRAC_BITS
    np.testing.assert_array_equal(score, sq_q.sum(axis=1))
    wmse = (w * sq).mean(axis=1)  # numpy weighted MSE of the quantized reconstruction
    assert np.all(np.abs(score / x.shape[1] - wmse) <= 2.0 ** -(SCORE_FRAC_BITS + 1))
    assert np.ptp(score) > 0


def test_masked_centre_is_invisible_to_the_encoder(trained, small_data):
    from keras import ops

    card, run, _ = trained("ad_autoencoder")
    hidden = masked_crystals(card, small_data.meta)
    assert hidden.sum() == card.anomaly.masked_centre**2 > 0
    enc = load_model(run / "model.keras").get_layer(card.layers[0]["name"])
    np.testing.assert_array_equal(ops.convert_to_numpy(enc.qkernel)[hidden], 0.0)
    assert np.any(ops.convert_to_numpy(enc.qkernel)[~hidden] != 0.0)


def test_save_load_round_trip_gives_identical_predictions(trained, small_data):
    card, run, _ = trained("eg_cnn")
    x = model_inputs(card, small_data)
    a = predict(load_model(run / "model.keras"), x)
    b = predict(load_model(run / "model.keras"), x)
    np.testing.assert_array_equal(a, b)
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"quantized", "float", "sparsity", "delta"} <= set(metrics)
    for png in ("loss.png", "roc.png", "weights.png"):
        assert (run / "plots" / png).stat().st_size > 5000


def test_same_seed_gives_identical_weights(small_data, tmp_path):
    card = tiny_card("eg_mlp", epochs=1, max_events=1500)
    train(card, small_data, tmp_path / "a")
    train(card, small_data, tmp_path / "b")
    wa = load_model(tmp_path / "a" / "model.keras").get_weights()
    wb = load_model(tmp_path / "b" / "model.keras").get_weights()
    for x, y in zip(wa, wb, strict=True):
        np.testing.assert_array_equal(x, y)


def test_missing_class_fails_clearly_and_leaves_no_run_dir(small_data, tmp_path):
    card = tiny_card("eg_mlp").with_overrides(classes=("eg", "muon"))
    with pytest.raises(SchemaError, match="no class 'muon'"):
        train(card, small_data, tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_corrupt_model_file_is_one_clear_error(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(SchemaError, match="cannot load the model"):
        load_model(tmp_path / "model.keras")
