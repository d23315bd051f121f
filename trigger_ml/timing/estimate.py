"""The report's timing estimate of a compiled model: each pipeline stage's slowest path under
the delay model (from the yosys netlist, `report/yosys.py`), the worst stage, Fmax, and the
latency at the target clock. An estimate, labelled with its model; not a placed-and-routed figure.
"""

from __future__ import annotations

from typing import Any


def estimate(syn: dict[str, Any], clock_ns: float, uncertainty_ns: float, cycles: int) -> dict[str, Any] | None:
    """Timing figures from a `yosys.synthesize` result (None when it has no delay model)."""
    model = syn.get("timing_model")
    stages = [(s["module"], s["timing"]) for s in syn.get("stages", []) if s.get("timing")]
    if not model or not stages:
        return None
    rows = [{"stage": m, **t, "slack_ns": round(clock_ns - uncertainty_ns - t["delay_ns"], 4)} for m, t in stages]
    worst = max(rows, key=lambda r: r["delay_ns"])
    period = worst["delay_ns"] + uncertainty_ns
    return {
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
