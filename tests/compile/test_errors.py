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
