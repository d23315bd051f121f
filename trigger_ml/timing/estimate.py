"""The report's timing estimate of a compiled model: each pipeline stage's slowest path under
the delay model (from the yosys netlist, `report/yosys.py`), the worst stage, Fmax, and the
latency at the target clock. An estimate, labelled with its model; not a placed-and-routed figure.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from trigger_ml.layout import FirmwareDir


def vivado(fw_dir: Path, clock_ns: float) -> dict[str, Any] | None:
    """WNS of Vivado's post-route timing summary of the da4ml RTL, when Vivado ran it."""
    p = FirmwareDir(fw_dir).vivado_timing  # written by da4ml's build_vivado_prj.tcl
    if not p.exists():
        return None
    m = re.search(r"WNS\(ns\)\s+TNS\(ns\).*?\n\s*-+.*?\n\s*(-?[\d.]+)", p.read_text(), re.S)
    if not m:
        return None
    wns = float(m.group(1))
    return {
        "source": f"vendor report (Vivado post-route timing, {p.relative_to(fw_dir)})",
        "wns_ns": wns,
        "critical_path_ns": round(clock_ns - wns, 4),
        "fmax_mhz": round(1000.0 / (clock_ns - wns), 1),
        "met": wns >= 0,
    }


def estimate(
    syn: dict[str, Any], clock_ns: float, uncertainty_ns: float, cycles: int, fw_dir: Path | None = None
) -> dict[str, Any] | None:
    """Timing figures from a `yosys.synthesize` result (None when it has no delay model). When
    Vivado's post-route timing of the RTL exists under `fw_dir`, its Fmax and met/not take
    precedence and the model's error against it is given (`vendor`, `model_over_vendor`)."""
    model = syn.get("timing_model")
    stages = [(s["module"], s["timing"]) for s in syn.get("stages", []) if s.get("timing")]
    if not model or not stages:
        return None
    rows = [{"stage": m, **t, "slack_ns": round(clock_ns - uncertainty_ns - t["delay_ns"], 4)} for m, t in stages]
    worst = max(rows, key=lambda r: r["delay_ns"])
    period = worst["delay_ns"] + uncertainty_ns
    out = {
        "source": f"estimate: {model['name']} delay model on the yosys netlist ({model['source']})",
        "model": model["name"],
        "clock_ns": clock_ns,
        "clock_uncertainty_ns": uncertainty_ns,
        "worst_stage": worst["stage"],
        "worst_stage_delay_ns": worst["delay_ns"],
        "worst_stage_lut_levels": worst["lut_levels"],
        "worst_stage_carry_bits": worst["carry_bits"],
        "fmax_mhz": round(1000.0 / period, 1),
        "cycles": int(cycles),
        "latency_ns": cycles * clock_ns,
        "met": bool(period <= clock_ns),
        "stages": rows,
    }
    vend = vivado(fw_dir, clock_ns) if fw_dir is not None else None
    if vend:
        out["vendor"] = vend
        out["model_over_vendor"] = round((worst["delay_ns"] + uncertainty_ns) / vend["critical_path_ns"], 3)
        out.update(source=vend["source"], fmax_mhz=vend["fmax_mhz"], met=vend["met"])
    return out
