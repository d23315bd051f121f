"""The FPGA family table: one family per part, chosen once; unknown and malformed parts are one error."""

import pytest

from trigger_ml import fpga
from trigger_ml.errors import UnsupportedError


@pytest.mark.parametrize(
    "part,family",
    [
        ("xcvu13p-flga2577-2-e", "xcup"),
        ("xczu3eg-sbva484-1-e", "xcup"),
        ("xcku115-flvb2104-2-e", "xcu"),
        ("xc7a35t-cpg236-1", "xc7"),
        ("LFE5U-85F-6BG381C", "ecp5"),
        ("lfe5u-25f", "ecp5"),
    ],
)
def test_each_part_has_one_family_with_its_synthesis_and_cells(part, family):
    fam = fpga.family_of(part)
    assert fam.name == family
    script = fam.synth_script("model_stage0", "abc9")
    assert ("synth_ecp5" if family == "ecp5" else f"synth_xilinx -family {family}") in script
    assert "-top model_stage0" in script and fam.cells["lut"] and fam.cells["ff"]


def test_ecp5_is_synthesised_and_counted_as_ecp5_not_as_xilinx():
    fam = fpga.family_of("LFE5U-85F-6BG381C")
    assert fam.delays is fpga.ECP5
    assert fam.counts({"LUT4": 10, "TRELLIS_FF": 3, "CCU2C": 2, "LUT6": 99}) == {
        "lut": 10.0,
        "ff": 3.0,
        "carry": 2.0,
        "dsp": 0.0,
        "bram": 0.0,
    }


@pytest.mark.parametrize("part", ["foo123", 'xcvu13p"; exec rm -rf /', "", "x" * 80, "ice40-hx8k"])
def test_unknown_or_malformed_parts_are_one_clear_error(part):
    with pytest.raises(UnsupportedError) as exc:
        fpga.family_of(part)
    assert "part" in exc.value.what and exc.value.fix


def test_a_card_with_an_unknown_part_is_refused_when_loaded():
    from trigger_ml.config import card_from_dict

    card = {
        "name": "m",
        "task": "classifier",
        "input": "features",
        "layers": [{"type": "dense", "units": 1}],
        "firmware": {"part": "xc2v1000"},
    }
    with pytest.raises(UnsupportedError, match="no FPGA family"):
        card_from_dict(card, "card.yaml")
