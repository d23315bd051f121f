import pytest

from trigger_ml.config import load_card
from trigger_ml.errors import SchemaError, UnsupportedError

from .conftest import ROOT


@pytest.mark.parametrize("name", ["eg_mlp", "eg_cnn", "ad_autoencoder"])
def test_reference_cards_load(name):
    card = load_card(ROOT / "models" / f"{name}.yaml")
    assert card.name == name
    assert card.firmware.clock_ns == 5.0
    assert card.budget.latency_ns is not None


def _write(tmp_path, text):
    p = tmp_path / "m.yaml"
    p.write_text(text)
    return p


BASE = "name: m\ntask: classifier\ninput: features\nlayers:\n"


def test_unknown_layer_names_layer_and_supported(tmp_path):
    p = _write(tmp_path, BASE + "  - {type: lstm, units: 4}\n  - {type: dense, units: 1}\n")
    with pytest.raises(UnsupportedError, match=r"layer 0 has unknown type 'lstm'") as e:
        load_card(p)
    assert "dense" in e.value.fix


def test_unknown_activation_and_key(tmp_path):
    with pytest.raises(UnsupportedError, match="activation 'tanh'"):
        load_card(_write(tmp_path, BASE + "  - {type: dense, units: 1, activation: tanh}\n"))
    with pytest.raises(SchemaError, match="unknown key 'unit'"):
        load_card(_write(tmp_path, BASE + "  - {type: dense, unit: 1}\n"))
    with pytest.raises(SchemaError, match="unknown key 'epoch'"):
        load_card(_write(tmp_path, BASE + "  - {type: dense, units: 1}\ntraining: {epoch: 3}\n"))


def test_bad_values_are_named(tmp_path):
    with pytest.raises(SchemaError, match=r"m.yaml.task: 'regression' is not one of"):
        load_card(_write(tmp_path, BASE.replace("classifier", "regression") + "  - {type: dense, units: 1}\n"))
    with pytest.raises(SchemaError, match="training.epochs: expected a number"):
        load_card(_write(tmp_path, BASE + "  - {type: dense, units: 1}\ntraining: {epochs: many}\n"))
    with pytest.raises(SchemaError, match="ends in dense with units: 1"):
        load_card(_write(tmp_path, BASE + "  - {type: dense, units: 2}\n"))
    with pytest.raises(SchemaError, match="not a readable YAML"):
        load_card(_write(tmp_path, "name: [unclosed\n"))
