"""Silent wrong results, reproduced (issue 27, items 6 and 8, and two item-12 inputs): hand-written
vendor reports do not count, a partial recorded one is one error; a misspelt pruning layer and
data of another window size are refused; an NPZ object array is one error (never unpickled)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from trigger_ml.cli import main
from trigger_ml.config import load_card
from trigger_ml.errors import EXIT_USAGE, SchemaError

ROOT = Path(__file__).resolve().parents[2]
APP = '<AutoPilot:project xmlns:AutoPilot="x"><solutions><solution name="solution1"/></solutions></AutoPilot:project>'
CSYNTH = """<?xml version="1.0" encoding="UTF-8"?>
<profile>
  <UserAssignments><TargetClockPeriod>5.00</TargetClockPeriod></UserAssignments>
  <PerformanceEstimates>
    <SummaryOfTimingAnalysis><EstimatedClockPeriod>4.0</EstimatedClockPeriod></SummaryOfTimingAnalysis>
    <SummaryOfOverallLatency>
      <Best-caseLatency>1</Best-caseLatency><Worst-caseLatency>1</Worst-caseLatency>
      <Interval-min>1</Interval-min><Interval-max>1</Interval-max>
    </SummaryOfOverallLatency>
  </PerformanceEstimates>
  <AreaEstimates>
    <Resources><BRAM_18K>0</BRAM_18K><DSP>0</DSP><FF>1</FF><LUT>1</LUT><URAM>0</URAM></Resources>
    <AvailableResources><BRAM_18K>1</BRAM_18K><DSP>1</DSP><FF>1</FF><LUT>1</LUT><URAM>1</URAM></AvailableResources>
  </AreaEstimates>
</profile>
"""
CSYNTH_XML = "hls/myproject_prj/solution1/syn/report/myproject_csynth.xml"


def _exit(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


def _vendor_files(fw: Path, app: bool = True, csynth: str = CSYNTH) -> None:
    """Vendor report files as a hand would write them into a firmware's hls/."""
    xml = fw / CSYNTH_XML
    xml.parent.mkdir(parents=True)
    xml.write_text(csynth)
    if app:
        (fw / "hls" / "myproject_prj" / "hls.app").write_text(APP)


def _fw(compiled, tmp_path: Path) -> Path:
    fw = tmp_path / "fw"
    shutil.copytree(compiled("eg_mlp", "latency").out, fw)
    return fw


# ---------------------------------------------------------------------------- item 6: vendor reports


@pytest.mark.slow
@pytest.mark.parametrize("app", [True, False], ids=["app+xml", "xml-alone"])
def test_unrecorded_vendor_reports_are_ignored_by_report_and_verify(compiled, tmp_path, capsys, app):
    from trigger_ml.report.build import budget_verdict

    fw = _fw(compiled, tmp_path)
    _vendor_files(fw, app=app)
    main(["report", str(fw), "--no-synth"])
    assert "vendor" in capsys.readouterr().err  # the one-line note (wrapped by the console)
    rep = json.loads((fw / "report" / "report.json").read_text())
    assert rep["sources"]["vendor"] == {}
    assert not rep["figures"]["lut"]["source"].startswith("vendor") and rep["figures"]["lut"]["value"] > 1
    lut = next(b for b in rep["budget"] if b["check"].startswith("budget: lut"))
    assert not lut["source"].startswith("vendor") and lut["value"] > 1
    assert rep["vendor_ignored"].startswith("vendor report ignored, not recorded in manifest.json")
    assert CSYNTH_XML in rep["vendor_ignored"]
    checks = budget_verdict(fw, synth=False)  # what `trigger-ml verify` adds to its gates
    assert not any(c.detail.startswith("vendor") for c in checks)


@pytest.mark.slow
def test_recorded_vendor_reports_count_and_are_checked(compiled, tmp_path, capsys):
    from trigger_ml.compile import vendor
    from trigger_ml.report import figures

    fw = _fw(compiled, tmp_path)
    _vendor_files(fw)
    vendor.record(fw, "vitis_hls")  # what `compile --vendor` does after the vendor tool ran
    assert figures.vendor(fw, 5.0)["lut"].value == 1
    (fw / CSYNTH_XML).write_text(CSYNTH.replace("<LUT>1</LUT>", "<LUT>2</LUT>"))  # edited after the run
    code, err = _exit(["report", str(fw), "--no-synth"], capsys)
    assert code == EXIT_USAGE and CSYNTH_XML in err and "does not match the sha256" in err


@pytest.mark.slow
@pytest.mark.parametrize(
    "csynth",
    [CSYNTH[: len(CSYNTH) // 2], CSYNTH.replace("<PerformanceEstimates>", "<Other>").replace("</Perf", "</Oth")],
    ids=["truncated", "no-performance"],
)
def test_a_partial_vendor_report_is_one_error(compiled, tmp_path, capsys, csynth):
    from trigger_ml.compile import vendor

    fw = _fw(compiled, tmp_path)
    _vendor_files(fw, csynth=csynth)
    vendor.record(fw, "vitis_hls")
    code, err = _exit(["report", str(fw), "--no-synth"], capsys)
    assert code == EXIT_USAGE and "partial or corrupt vendor report" in err and CSYNTH_XML in err
    assert "Traceback" not in err and not (fw / "report").exists()


# ---------------------------------------------------------------------------- item 8: pruning, windows


def test_pruning_per_layer_naming_no_layer_is_refused(tmp_path, capsys):
    card = yaml.safe_load((ROOT / "models" / "eg_mlp.yaml").read_text())
    card["pruning"]["per_layer"] = {"dense_1": 0.9}  # a misspelling of dense1
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(card))
    with pytest.raises(SchemaError, match="'dense_1' is not a layer with weights") as exc:
        load_card(path)  # every command loads the card first
    assert exc.value.fix.endswith("dense1, dense2, logit")
    code, err = _exit(["train", str(path), "--data", str(tmp_path / "none.h5"), "--out", str(tmp_path / "run")], capsys)
    assert code == EXIT_USAGE and "'dense_1'" in err and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_verify_refuses_data_of_another_window_size(compiled, tmp_path, capsys):
    from trigger_ml.data import SimConfig, simulate_dataset
    from trigger_ml.data.io import write_npz

    fw = compiled("eg_mlp", "latency").out  # trained on 9x9 windows
    data = write_npz(simulate_dataset(50, SimConfig(window=7), seed=3), tmp_path / "w7.npz")
    code, err = _exit(["verify", str(fw), "--data", str(data), "--no-rtl", "--no-budget"], capsys)
    assert code == EXIT_USAGE
    assert "w7.npz" in err and "7x7" in err and "9x9" in err


# ---------------------------------------------------------------------------- item 12: an NPZ object array


@pytest.mark.parametrize("field", ["images", "labels", "class_names"])
def test_an_npz_object_array_is_one_error(tmp_path, capsys, field):
    arrays = {
        "images": np.zeros((3, 9, 9), np.uint16),
        "labels": np.array([0, 1, 0]),
        "class_names": np.array(["eg", "pu"]),
        "lsb_gev": np.float64(0.25),
    }
    arrays[field] = np.array([1, "a", None], dtype=object)
    path = tmp_path / "obj.npz"
    np.savez(path, **arrays)
    code, err = _exit(["data", "plot", str(path), "--out", str(tmp_path / "plots")], capsys)
    assert code == EXIT_USAGE and f"field {field!r} is an object array" in err and "obj.npz" in err
    assert not (tmp_path / "plots").exists()
