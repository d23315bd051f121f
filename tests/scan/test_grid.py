"""The grid: keys, values, points and their content hashes; the Pareto front; a point's card."""

import pytest

from trigger_ml.errors import SchemaError, TriggerMLError
from trigger_ml.scan.grid import Point, parse_grid, parse_point, points
from trigger_ml.scan.results import pareto_front


def test_grid_values_are_typed_and_the_points_are_the_product():
    grid = parse_grid(["bits=4,6,8", "sparsity=0,0.5", "strategy=latency,da"])
    assert grid == {"bits": [4, 6, 8], "sparsity": [0, 0.5], "strategy": ["latency", "da"]}
    pts = points(grid, [], salt="s")
    assert len(pts) == 12 and len({p.id for p in pts}) == 12
    assert pts[0].params == (("bits", 4), ("sparsity", 0), ("strategy", "latency"))


def test_point_ids_depend_on_values_and_salt_and_duplicates_go():
    a = points({"bits": [4]}, [], salt="card-1")
    assert points({"bits": [4]}, [], salt="card-1")[0].id == a[0].id  # found again on re-run
    assert points({"bits": [4]}, [], salt="card-2")[0].id != a[0].id  # another card or data set: a new point
    assert len(points({"bits": [4, 6]}, [{"bits": 6}, {"bits": 3}], salt="x")) == 3


def test_short_keys_and_value_aliases_map_onto_card_fields():
    p = Point((("bits", 4), ("sparsity", 0.5), ("strategy", "da"), ("training.batch_size", 128)), "id")
    assert p.overrides() == {
        "quantization": {"weight_bits": 4},
        "pruning": {"default": 0.5},
        "firmware": {"strategy": "distributed_arithmetic"},
        "training": {"batch_size": 128},
    }


@pytest.mark.parametrize("spec", ["bits", "bits=", "=4", "colour=red,blue", "a.b.c=1"])
def test_bad_grid_specs_say_how_to_write_them(spec):
    with pytest.raises(TriggerMLError):
        parse_grid([spec])


def test_a_key_given_twice_and_an_empty_scan_are_errors():
    with pytest.raises(TriggerMLError, match="twice"):
        parse_grid(["bits=4", "bits=6"])
    with pytest.raises(TriggerMLError, match="no points"):
        points({}, [], salt="s")
    with pytest.raises(TriggerMLError, match="--point"):
        parse_point("bits")


def test_a_points_card_is_validated_like_a_card_file():
    import yaml

    from trigger_ml.scan.point import point_card

    from ..conftest import ROOT

    card = yaml.safe_load((ROOT / "models" / "eg_mlp.yaml").read_text())
    job = {"id": "x", "params": [["bits", 5], ["strategy", "da"]], "card": card, "card_name": "eg_mlp.yaml"}
    got = point_card(job)
    assert got.quantization.weight_bits == 5 and got.firmware.strategy == "distributed_arithmetic"
    assert card["quantization"]["weight_bits"] == 3  # the base card is not changed
    with pytest.raises(SchemaError, match="bogus"):
        point_card({**job, "params": [["strategy", "bogus"]]})
    with pytest.raises(SchemaError, match="unknown key"):
        point_card({**job, "params": [["training.colour", 1]]})


def _row(phys, lut, exact="10/10", status="ok"):
    return {"status": status, "physics": phys, "lut": lut, "exact": exact}


def test_pareto_front_keeps_the_undominated_exact_points():
    rows = [
        _row(0.80, 1000),
        _row(0.85, 2000),
        _row(0.84, 2500),
        _row(0.90, 1500, exact="9/10"),
        _row(0.95, 900, status="failed"),
        _row(0.85, 2000),
    ]
    # 0.84@2500 is beaten by 0.85@2000; the mismatching and the failed point are not designs;
    # two identical points are both optimal (neither beats the other strictly)
    assert pareto_front(rows) == [0, 1, 5]
