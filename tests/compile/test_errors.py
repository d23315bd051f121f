"""Bad input to compile: one clear error naming the problem, a non-zero exit, nothing half-written."""

import shutil

import numpy as np
import pytest

from trigger_ml.cli import main
from trigger_ml.compile import Options, compile_run
from trigger_ml.errors import SchemaError, UnsupportedError
from trigger_ml.layout import TMP_PREFIX

pytestmark = pytest.mark.slow


def _run_with(model, trained, tmp_path):
    _, run, _ = trained("eg_mlp")
    d = tmp_path / "run"
    d.mkdir()
    shutil.copy(run / "card.yaml", d / "card.yaml")
    shutil.copy(run / "metrics.json", d / "metrics.json")
    model.save(d / "model.keras")
    return d


def _nothing_left(out):
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_unsupported_layer_is_named(trained, tmp_path):
    import keras
    from hgq.layers import QDense

    inp = keras.Input((10,), name="x")
    h = QDense(4, name="dense1")(inp)
    h = keras.layers.LayerNormalization(name="norm")(h)
    model = keras.Model(inp, QDense(1, name="logit")(h))
    model(np.zeros((1, 10), np.float32))
    out = tmp_path / "fw"
    with pytest.raises(UnsupportedError) as err:
        compile_run(_run_with(model, trained, tmp_path), out)
    assert "'norm'" in err.value.what and "LayerNormalization" in err.value.what
    assert "QDense" in err.value.fix
    _nothing_left(out)


def test_model_without_quantizers_is_refused(trained, tmp_path):
    import keras

    inp = keras.Input((10,), name="x")
    model = keras.Model(inp, keras.layers.Dense(1, name="logit")(keras.layers.Dense(4, name="d")(inp)))
    out = tmp_path / "fw"
    with pytest.raises(UnsupportedError) as err:
        compile_run(_run_with(model, trained, tmp_path), out, Options(use_cache=False))
    assert "'d'" in err.value.what  # the first layer that is not quantized
    _nothing_left(out)


def test_unknown_strategy_and_missing_run(trained, tmp_path):
    _, run, _ = trained("eg_mlp")
    with pytest.raises(SchemaError, match="strategy: 'fastest' is not one of"):
        compile_run(run, tmp_path / "fw", Options(strategy="fastest"))
    with pytest.raises(SchemaError, match="not a training run"):
        compile_run(tmp_path, tmp_path / "fw")
    _nothing_left(tmp_path / "fw")


def test_cli_exit_codes(trained, tmp_path, capsys):
    _, run, _ = trained("eg_mlp")
    main(["compile", str(run), "--out", str(tmp_path / "fw")])
    out = capsys.readouterr().out
    assert "precisions derived from the quantized model" in out and "dense1" in out
    with pytest.raises(SystemExit) as exc:
        main(["compile", str(tmp_path / "nowhere"), "--out", str(tmp_path / "fw2")])
    assert exc.value.code == 3
    with pytest.raises(SystemExit) as exc:
        main(["compile", str(run), "--out", str(tmp_path / "fw3"), "--backend", "Quartus9"])
    assert exc.value.code == 3
    _nothing_left(tmp_path / "fw3")


def test_a_lookup_table_wider_than_its_input_word_is_refused(tmp_path):
    """hls4ml indexes a QUnaryFunctionLUT's table with its input word; when the producer's reachable
    range is narrower than the table's input format, the word is narrower than the table and the
    wrong entries are read (layer_coverage.md: 2603/3000 wrong): compile says so instead."""
    import keras
    from hgq.layers import QDense, QUnaryFunctionLUT

    from trigger_ml.compile import hls
    from trigger_ml.config import load_card
    from trigger_ml.fixed import Fixed
    from trigger_ml.interop.lower import conf

    inp = keras.Input((4,), name="x")
    h = QDense(2, iq_conf=conf(Fixed(True, 0, 3)), kq_conf=conf(Fixed(True, 0, 2), "weight"), name="d")(inp)
    lut = QUnaryFunctionLUT(
        "tanh",
        iq_conf=conf(Fixed(True, 6, 4), scalar=True),  # 11 bits; the dense reaches far fewer
        oq_conf=conf(Fixed(True, 0, 7, "RND", "SAT"), "table", scalar=True),
        allow_heterogeneous_table=False,
        name="t",
    )
    model = keras.Model(inp, lut(h))
    model.get_layer("d").kernel.assign(np.full((4, 2), 0.25, np.float32))
    card = load_card(__import__("tests.conftest", fromlist=["ROOT"]).ROOT / "models" / "eg_mlp.yaml")
    with pytest.raises(UnsupportedError, match=r"lookup tables[^\n]*\n  - t\w*: input 6 bits, table 2048 entries"):
        hls.convert(model, card, tmp_path / "hls", "latency", "Vitis", "t")
