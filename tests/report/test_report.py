"""The report stage: yosys counts of a hand-countable design, pruning lowers LUTs, vendor
reports parsed with hls4ml's reader and preferred, and the full report of each reference model."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from trigger_ml.cli import main

pytestmark = pytest.mark.slow


def _adder_tree_rtl(tmp_path: Path) -> Path:
    """da4ml RTL of y = x0 + x1 + x2 + x3, x_i in ufixed<8,0> (a frozen all-ones QDense)."""
    import keras
    from hgq.config import QuantizerConfig
    from hgq.layers import QDense

    from trigger_ml.compile import rtl
    from trigger_ml.config import load_card

    iq = QuantizerConfig("kif", "datalane", k0=0, i0=0, f0=8, round_mode="TRN", overflow_mode="WRAP", trainable=False)
    ones = QuantizerConfig("kif", "weight", k0=0, i0=1, f0=0, trainable=False)
    inp = keras.Input((4,))
    out = QDense(1, use_bias=False, kernel_initializer="ones", kq_conf=ones, iq_conf=iq, trainable=False)(inp)
    model = keras.Model(inp, out)
    comb = rtl.trace(model, (0, 0, 8))
    card = load_card(Path(__file__).parents[2] / "models" / "eg_mlp.yaml")
    rtl.write_verilog(comb, card, tmp_path / "rtl")
    return tmp_path / "rtl"


def test_yosys_counts_of_an_adder_tree_match_the_hand_count(tmp_path):
    """Three adders (8+8 -> 9, 8+8 -> 9, 9+9 -> 10 bits): one LUT per adder bit = 8 + 8 + 9 = 25
    LUTs, on at most 7 CARRY4 (ceil(8/4) + ceil(8/4) + ceil(9/4); abc folds short carries into
    LUTs: 3 seen); registers: 4 x 8 input bits and the 10-bit output = 42 FFs. Tolerance: LUTs
    +- 3, FFs exact, no DSP or BRAM. (Measured: 25 LUT, 42 FF, 3 CARRY4.)"""
    from trigger_ml.report.yosys import synthesize

    syn = synthesize(_adder_tree_rtl(tmp_path), "xcvu13p-flga2577-2-e")
    t = syn["totals"]
    assert len(syn["stages"]) == 1
    assert abs(t["lut"] - 25) <= 3, syn
    assert t["ff"] == 42, syn
    assert 1 <= t["carry"] <= 7 and t["dsp"] == 0 and t["bram"] == 0
    assert syn["stages"][0]["depth_cells"] >= 3  # LUT -> carry chain -> ... at least one adder deep


def test_pruning_more_weights_of_eg_mlp_lowers_its_lut_count(trained, tmp_path):
    from trigger_ml.compile import compile_run
    from trigger_ml.report.build import build
    from trigger_ml.train.fit import load_model

    _, run, _ = trained("eg_mlp")
    pruned_run = tmp_path / "run"
    shutil.copytree(run, pruned_run)
    model = load_model(run / "model.keras")
    for layer in model.layers:
        if hasattr(layer, "qkernel"):
            k = np.asarray(layer.kernel)
            q = np.asarray(layer.qkernel).ravel()
            nz = np.flatnonzero(q)
            drop = nz[np.argsort(np.abs(k.ravel()[nz]), kind="stable")[: len(nz) // 2]]  # by rank: few-bit
            pruned = k.ravel().copy()  # weights tie a lot
            pruned[drop] = 0.0
            layer.kernel.assign(pruned.reshape(k.shape))
    model.save(pruned_run / "model.keras")
    luts = {}
    for name, r in (("trained", run), ("pruned", pruned_run)):
        fw = compile_run(r, tmp_path / f"fw-{name}").out
        rep = build(fw, synth=True)
        assert rep["figures"]["lut"]["source"].startswith("yosys")
        luts[name] = (rep["figures"]["lut"]["value"], rep["sparsity"]["fraction_pruned"])
    assert luts["pruned"][1] > luts["trained"][1]
    assert luts["pruned"][0] < 0.9 * luts["trained"][0], luts


CSYNTH = """<?xml version="1.0" encoding="UTF-8"?>
<profile>
  <UserAssignments><TargetClockPeriod>5.00</TargetClockPeriod></UserAssignments>
  <PerformanceEstimates>
    <SummaryOfTimingAnalysis><EstimatedClockPeriod>4.123</EstimatedClockPeriod></SummaryOfTimingAnalysis>
    <SummaryOfOverallLatency>
      <Best-caseLatency>4</Best-caseLatency><Worst-caseLatency>5</Worst-caseLatency>
      <Interval-min>1</Interval-min><Interval-max>1</Interval-max>
    </SummaryOfOverallLatency>
  </PerformanceEstimates>
  <AreaEstimates>
    <Resources><BRAM_18K>0</BRAM_18K><DSP>3</DSP><FF>1234</FF><LUT>5678</LUT><URAM>0</URAM></Resources>
    <AvailableResources><BRAM_18K>5376</BRAM_18K><DSP>12288</DSP><FF>3456000</FF><LUT>1728000</LUT><URAM>1280</URAM></AvailableResources>
  </AreaEstimates>
</profile>
"""
VIVADO = """1. CLB Logic
------------
+----------------------------+------+-------+------------+-----------+-------+
|          Site Type         | Used | Fixed | Prohibited | Available | Util% |
+----------------------------+------+-------+------------+-----------+-------+
| CLB LUTs*                  | 4321 |     0 |          0 |   1728000 |  0.25 |
| CLB Registers              |  987 |     0 |          0 |   3456000 |  0.03 |
+----------------------------+------+-------+------------+-----------+-------+
2. BLOCKRAM
-----------
| Block RAM Tile             |    0 |     0 |          0 |      2688 |  0.00 |
3. ARITHMETIC
-------------
| DSPs                       |    2 |     0 |          0 |     12288 |  0.02 |
"""


def _fake_vendor_reports(hls: Path) -> None:
    """The files hls4ml's `parse_vivado_report` reads after a Vitis HLS + Vivado synthesis run."""
    if not (hls / "project.tcl").exists():  # a compiled project has it (and the manifest records it)
        (hls / "project.tcl").write_text('set project_name "myproject"\nset backend "vitis"\n')
    prj = hls / "myproject_prj"
    (prj / "solution1" / "syn" / "report").mkdir(parents=True)
    (prj / "hls.app").write_text(
        '<AutoPilot:project xmlns:AutoPilot="x"><solutions><solution name="solution1"/></solutions></AutoPilot:project>'
    )
    (prj / "solution1" / "syn" / "report" / "myproject_csynth.xml").write_text(CSYNTH)
    (hls / "vivado_synth.rpt").write_text(VIVADO)


def test_vendor_reports_are_parsed_and_take_precedence(compiled, tmp_path):
    from trigger_ml.compile import vendor
    from trigger_ml.report import figures

    fw = tmp_path / "fw"
    shutil.copytree(compiled("eg_mlp", "latency").out, fw)
    _fake_vendor_reports(fw / "hls")
    assert figures.vendor(fw, 5.0) == {}  # not recorded in the manifest: ignored
    vendor.record(fw, "vitis_hls")  # what `compile --vendor` does once the vendor tool ran
    v = figures.vendor(fw, 5.0)
    assert v["latency_cycles"].value == 5 and v["latency_ns"].value == 25 and v["ii"].value == 1
    assert (
        v["lut"].value == 4321 and v["ff"].value == 987 and v["dsp"].value == 2
    )  # Vivado synthesis beats the HLS estimate
    assert v["lut"].source == "vendor report (Vivado synthesis)"
    best = figures.best(fw, 5.0)
    assert best["lut"].source.startswith("vendor") and best["latency_cycles"].source.startswith("vendor")


def test_report_of_every_reference_model_and_the_menu(compiled, tmp_path, capsys):
    fws = []
    for name in ("eg_mlp", "ad_autoencoder", "eg_cnn"):
        fws.append(tmp_path / name)
        shutil.copytree(compiled(name, "latency").out, fws[-1])
    main(["report", *map(str, fws)])
    for fw in fws:
        rep = json.loads((fw / "report" / "report.json").read_text())
        f = rep["figures"]
        for q in ("latency_cycles", "latency_ns", "ii", "lut", "ff", "dsp"):
            assert q in f and f[q]["source"], (fw.name, q)
        assert f["latency_ns"]["value"] == f["latency_cycles"]["value"] * rep["target"]["clock_ns"]
        assert f["lut"]["source"].startswith("yosys") and rep["sources"]["yosys"]["totals"]["lut"] > 0
        assert rep["sources"]["da4ml"]["lut"] > 0 and rep["sources"]["analytic"]["totals"]["lut"] > 0
        html = (fw / "report" / "report.html").read_text()
        assert html.count("data:image/png;base64,") == len(rep["plots"]) >= 4
        assert (fw / "report" / "report.md").read_text().count("![") == len(rep["plots"])
        assert {b["check"].split(" <=")[0] for b in rep["budget"]} >= {"budget: lut", "budget: latency_ns"}
        tm = rep["timing"]  # the delay model's estimate (issue 10): every stage within the clock
        assert tm["model"] == "xcup" and tm["source"].startswith("estimate") and tm["clock_ns"] == 5.0
        assert len(tm["stages"]) == tm["cycles"] == f["latency_cycles"]["value"]
        assert tm["latency_ns"] == tm["cycles"] * 5.0 == f["latency_ns"]["value"]
        assert all(st["delay_ns"] + tm["clock_uncertainty_ns"] <= 5.0 for st in tm["stages"]), tm["stages"]
        assert tm["met"] and tm["fmax_mhz"] >= 200 and tm["worst_stage_lut_levels"] >= 1
        md = (fw / "report" / "report.md").read_text()
        assert "## Timing (estimate: xcup delay model" in md and tm["worst_stage"] in md
    menu = (tmp_path / "menu.md").read_text()
    assert all(name in menu for name in ("eg_mlp", "ad_autoencoder", "eg_cnn"))
    assert "trigger menu" in capsys.readouterr().out


def test_yosys_is_not_run_with_no_synth_or_above_the_lut_cap_and_the_report_says_why(compiled, tmp_path):
    import inspect

    from trigger_ml.cli.stages import report_cmd
    from trigger_ml.report.build import SYNTH_MAX_LUT, too_big_for_yosys

    fw = tmp_path / "fw"
    shutil.copytree(compiled("eg_mlp", "latency").out, fw)
    est = json.loads((fw / "manifest.json").read_text())["rtl"]["estimate"]["lut"]  # e.g. 1471.5
    assert too_big_for_yosys({"estimate": {"lut": est}}, math.ceil(est)) is None  # within the cap: synthesised
    assert too_big_for_yosys({"estimate": {"lut": est}}, 0) is None  # 0: no cap
    assert too_big_for_yosys({}, 1) is None  # no da4ml estimate: nothing to judge by
    assert inspect.signature(report_cmd).parameters["synth_max_lut"].default == SYNTH_MAX_LUT
    main(["report", str(fw)])
    assert "synth_skipped" not in json.loads((fw / "report" / "report.json").read_text())  # under the default cap
    assert (fw / "report" / "synth.json").exists()
    main(["report", str(fw), "--no-synth"])  # the next source, not the synth.json an earlier report left
    rep = json.loads((fw / "report" / "report.json").read_text())
    assert rep["figures"]["lut"]["source"] == "da4ml estimate" and rep["sources"]["yosys"] is None
    assert "synth_skipped" not in rep and not (fw / "report" / "synth.json").exists()
    main(["report", str(fw), "--synth-max-lut", str(math.ceil(est) - 1)])
    rep = json.loads((fw / "report" / "report.json").read_text())
    assert rep["synth_skipped"].startswith(f"yosys not run: da4ml estimates {est:,.0f} LUT")
    assert rep["figures"]["lut"]["source"] == "da4ml estimate" and rep["sources"]["yosys"] is None
    assert not (fw / "report" / "synth.json").exists()
    assert rep["synth_skipped"] in (fw / "report" / "report.md").read_text()


def test_report_of_a_directory_that_is_not_compiled_exits_3(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path)])
    assert exc.value.code == 3
    assert not (tmp_path / "report").exists()
