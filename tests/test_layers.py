"""The layer-kind table: card keys with defaults and bounds, both builders, weights, compile support."""

import numpy as np
import pytest

from trigger_ml.errors import SchemaError, UnsupportedError
from trigger_ml.layers import KINDS, card_kinds, check_layers, check_spec, kind_of_class


def test_every_card_kind_has_both_builders_and_a_class_compile_accepts():
    for name in card_kinds():
        k = KINDS[name]
        assert k.quantized is not None and k.float is not None and k.classes and k.hls4ml
        for key, spec in k.keys.items():
            assert spec.default is not None or key == "name" or spec.default.__class__ is object


@pytest.mark.parametrize("name", card_kinds())
def test_builders_make_layers_of_the_named_class_with_the_weights_to_copy(name):
    import keras

    k = KINDS[name]
    spec = check_spec(
        {"type": name, **({"units": 3} if name == "dense" else {}), **({"filters": 2} if name == "conv2d" else {})},
        0,
        "t",
    )
    q, f = k.quantized(spec, "lay", None), k.float(spec, "lay")
    assert type(q).__name__ in k.classes and q.name == f.name == "lay"
    shape = (1, 8, 8, 2) if name in ("conv2d", "maxpool2d", "avgpool2d", "flatten") else (1, 4)
    x = np.ones(shape, np.float32)
    q(x), f(x)
    for var in k.weights:
        assert getattr(q, var).shape == getattr(f, var).shape
    assert kind_of_class(type(q).__name__) is k
    del keras


@pytest.mark.parametrize(
    "spec,err,match",
    [
        ({"type": "dense", "units": "24"}, SchemaError, "units '24': not an integer"),
        ({"type": "dense", "units": 0}, SchemaError, "units 0: out of range"),
        ({"type": "dense", "units": -4}, SchemaError, "out of range"),
        ({"type": "dense", "units": 2.5}, SchemaError, "not an integer"),
        ({"type": "dense"}, SchemaError, "needs 'units'"),
        ({"type": "dense", "units": 4, "activation": "tanh"}, UnsupportedError, "activation 'tanh'"),
        ({"type": "dense", "units": 4, "name": "my layer"}, SchemaError, "not an identifier"),
        ({"type": "conv3d"}, UnsupportedError, "unknown type 'conv3d'"),
        ({"type": "avgpool2d", "pool": 3}, UnsupportedError, "pool 3"),
        ("dense", SchemaError, "not a mapping"),
    ],
)
def test_bad_layer_specs_name_the_key_the_value_and_the_allowed(spec, err, match):
    with pytest.raises(err, match=match) as exc:
        check_layers([spec], "card.yaml")
    assert exc.value.fix


def test_too_many_layers_and_duplicate_names():
    with pytest.raises(SchemaError, match="2000 layers"):
        check_layers([{"type": "flatten"}] * 2000, "card.yaml")
    with pytest.raises(SchemaError, match="used twice"):
        check_layers([{"type": "flatten", "name": "a"}, {"type": "flatten", "name": "a"}], "card.yaml")


def test_defaults_are_filled_for_the_builders_but_the_card_keeps_what_was_written():
    specs = [{"type": "conv2d", "filters": 2}]
    assert check_layers(specs, "c") == tuple(specs)
    assert check_spec(specs[0], 0, "c") == {
        "type": "conv2d",
        "filters": 2,
        "kernel": 3,
        "activation": "linear",
        "name": None,
    }
