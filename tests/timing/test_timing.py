"""The delay model: the critical path of designs whose structure is known by construction (a
chain of N LUT6 primitives, a W-bit ripple adder) synthesised by yosys, and da4ml's pipelining
cut by the model (every stage within the budget)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from trigger_ml.fpga import XCUP, delays_of, family_of
from trigger_ml.timing.netlist import longest_path

KNOWN = """
module lutchain #(parameter N = 5) (input [5:0] x, output y);
  wire [N:0] w;
  assign w[0] = x[0];
  genvar k;
  generate for (k = 0; k < N; k = k + 1) begin : g
    LUT6 #(.INIT(64'h6996966996696996)) l (.I0(w[k]), .I1(x[1]), .I2(x[2]), .I3(x[3]), .I4(x[4]), .I5(x[5]), .O(w[k+1]));
  end endgenerate
  assign y = w[N];
endmodule
module adder #(parameter W = 32) (input [W-1:0] a, b, output [W-1:0] y);
  assign y = a + b;
endmodule
"""


@pytest.fixture(scope="module")
def known_netlists(tmp_path_factory):
    """yosys (synth_xilinx -family xcup) netlists of the two known designs, in one run."""
    from trigger_ml.tools import yosys as yosys_command

    work = tmp_path_factory.mktemp("known")
    (work / "known.v").write_text(KNOWN)
    script = "".join(
        f"design -reset\nread_verilog known.v\nsynth_xilinx -family xcup -top {t} -flatten -noiopad\n"
        f"write_json {t}.json\n"
        for t in ("lutchain", "adder")
    )
    (work / "run.ys").write_text(script)
    subprocess.run([*yosys_command(), "-q", "-s", "run.ys"], cwd=work, check=True, capture_output=True)
    return {t: json.loads((work / f"{t}.json").read_text()) for t in ("lutchain", "adder")}


@pytest.mark.slow
def test_lut_chain_depth_and_delay(known_netlists):
    """5 LUT6 in series: 5 LUT levels, no carry, 6 routed hops (input, 4 between, output);
    delay = clk->Q + 5 x (hop + LUT) + hop + setup."""
    p = longest_path(known_netlists["lutchain"], "lutchain", XCUP)
    assert (p.lut_levels, p.carry_bits, p.net_hops) == (5, 0, 6)
    want = XCUP.t_clk_q + 5 * (XCUP.t_net + XCUP.t_lut) + XCUP.t_net + XCUP.t_setup
    assert p.ns == pytest.approx(want, abs=1e-9)
    assert p.start == "x[0]" and p.end == "y[0]"


@pytest.mark.slow
def test_ripple_adder_depth_and_delay(known_netlists):
    """y = a + b, 32 bits: one LUT level (the XOR into the carry's S input), then the carry
    ripples from bit 0 through all 32 bits (8 CARRY4 cells) to the sum's MSB; delay =
    clk->Q + hop + LUT + entry (S[0]) + 31 bits + exit (CI -> O) + hop + setup."""
    cells = [c["type"] for c in known_netlists["adder"]["modules"]["adder"]["cells"].values()]
    assert cells.count("CARRY4") == 8
    p = longest_path(known_netlists["adder"], "adder", XCUP)
    assert (p.lut_levels, p.carry_bits, p.net_hops) == (1, 32, 2)
    assert p.end == "y[31]"
    # S[0] -> CO[3]: entry + 3 bits; 6 cells CI -> CO[3]: 24 bits; last CI -> O[3]: exit + 3 bits
    want = (
        XCUP.t_clk_q
        + XCUP.t_net
        + XCUP.t_lut
        + XCUP.t_carry_entry
        + XCUP.t_carry_bit * (3 + 24 + 3)
        + XCUP.t_carry_exit
        + XCUP.t_net
        + XCUP.t_setup
    )
    assert p.ns == pytest.approx(want, abs=1e-9)


def test_delay_figures_of_the_reference_part_and_of_a_family_without_any():
    from trigger_ml.errors import UnsupportedError

    assert delays_of("xcvu13p-flga2577-2-e") is XCUP and family_of("xcvu13p-flga2577-2-e").delays is XCUP
    with pytest.raises(UnsupportedError, match="no delay figures for AMD/Xilinx 7 series"):
        delays_of("xc7a35t-cpg236-1")


def test_stage_budget_at_200_mhz():
    """5 ns - the margin - 0.1 uncertainty - clk->Q - setup - the hop into the register."""
    b = XCUP.stage_budget_ns(5.0, 0.1)
    assert b == pytest.approx(5.0 * (1 - XCUP.margin) - 0.1 - XCUP.t_clk_q - XCUP.t_setup - XCUP.t_net)
    assert 3 * XCUP.adder_ns(16) < b < 5 * XCUP.adder_ns(16)


@pytest.mark.slow
def test_pipelining_by_the_model_keeps_every_stage_in_budget(compiled):
    """eg_mlp compiled with the model's pipelining (the default): the plan's stages are within
    the budget and the Verilog has that many stages. (tests/verify checks this RTL bit for bit.)"""
    from trigger_ml.compile import manifest

    res = compiled("eg_mlp", "latency")
    est = manifest.read(res.out)["rtl"]["estimate"]
    plan = est["pipelining"]
    assert plan["model"] == "xcup" and plan["stages"] == est["stages"] >= 2
    assert len(plan["stage_delay_ns"]) == est["stages"]
    assert max(plan["stage_delay_ns"]) <= plan["stage_budget_ns"] + 1e-9
    assert len(list((Path(res.out) / "rtl" / "src").glob("model_stage*.v"))) == est["stages"]


VIVADO_SUMMARY = """------------------------------------------------------------------------------------------------
| Design Timing Summary
| ---------------------
------------------------------------------------------------------------------------------------

    WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)
    -------      -------  ---------------------  -------------------      -------      -------
     -0.412       -3.100                     12                  546        0.031        0.000
"""


def test_vivado_post_route_timing_takes_precedence(tmp_path):
    """A Vivado timing summary of the RTL (WNS -0.412 ns at 5 ns: 5.412 ns critical path) wins
    over the model's estimate (4.0 + 0.1 ns), which stays beside it with its error 4.1 / 5.412."""
    from trigger_ml.layout import FirmwareDir
    from trigger_ml.timing.estimate import estimate

    rpt = FirmwareDir(tmp_path).vivado_timing
    rpt.parent.mkdir(parents=True)
    rpt.write_text(VIVADO_SUMMARY)
    syn = {
        "timing_model": XCUP.to_dict(),
        "stages": [
            {"module": "model_stage0", "timing": {"delay_ns": 4.0, "lut_levels": 5, "carry_bits": 9, "net_hops": 6}},
            {"module": "model_stage1", "timing": {"delay_ns": 2.0, "lut_levels": 2, "carry_bits": 9, "net_hops": 3}},
        ],
    }
    model_only = estimate(syn, 5.0, 0.1, 2)
    assert model_only["met"] and model_only["worst_stage"] == "model_stage0" and model_only["latency_ns"] == 10.0
    tm = estimate(syn, 5.0, 0.1, 2, tmp_path)
    assert tm["vendor"]["wns_ns"] == -0.412 and tm["vendor"]["critical_path_ns"] == 5.412
    assert not tm["met"] and tm["source"].startswith("vendor report") and tm["fmax_mhz"] == round(1000 / 5.412, 1)
    assert tm["model_over_vendor"] == round(4.1 / 5.412, 3) and tm["worst_stage_delay_ns"] == 4.0
