"""Report plots: resources per layer, bit widths per layer, logic depth per pipeline stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.plotting import plt, save


def resources_per_layer(analytic: dict[str, Any], title: str, path: Path) -> Path:
    rows = analytic["layers"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    names = [r["layer"] for r in rows]
    ax.bar(names, [r["lut"] for r in rows], color="tab:blue")
    for i, r in enumerate(rows):
        ax.annotate(
            f"{r['nonzero']}/{r['weights']} w\n{100 * r['sparsity']:.0f}% pruned",
            (i, r["lut"]),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_ylabel("LUT (analytic estimate)")
    ax.set_title(f"{title}: LUT per layer (analytic estimate, upper bound)", fontsize=9)
    ax.margins(y=0.25)
    return save(fig, path)


def bit_widths(layers: list[dict[str, Any]], title: str, path: Path) -> Path:
    from trigger_ml.verify.trace import Fixed

    rows = [r for r in layers if r.get("class") not in ("Input",)]
    names = [r["layer"] for r in rows]
    kinds = ("result", "weight", "accum")
    fig, ax = plt.subplots(figsize=(max(6.4, 0.45 * len(rows)), 3.6))
    x = np.arange(len(rows))
    for j, kind in enumerate(kinds):
        widths = [(Fixed.parse(r[kind]).width if r.get(kind) and Fixed.parse(r[kind]) else 0) for r in rows]
        ax.bar(x + (j - 1) * 0.27, widths, width=0.27, label=kind)
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("bits")
    ax.set_title(f"{title}: bit widths per hls4ml layer (from the compiled precisions)", fontsize=9)
    ax.legend(fontsize=7)
    return save(fig, path)


def stage_depth(synth: dict[str, Any], clock_ns: float, title: str, path: Path) -> Path:
    stages = synth["stages"]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    names = [s["module"].removeprefix("model_") for s in stages]
    ax2 = ax.twinx()
    if all(s.get("timing") for s in stages):  # the delay model's estimate per stage, against the clock
        ax.bar(
            names,
            [s["timing"]["delay_ns"] for s in stages],
            color="tab:orange",
            label=f"slowest path, ns (estimate: {synth['timing_model']['name']} delay model)",
        )
        ax.axhline(clock_ns, color="k", ls="--", lw=1, label=f"clock {clock_ns:g} ns")
        ax.set_ylabel("estimated delay (ns)")
    else:
        ax.bar(
            names, [s["depth_cells"] or 0 for s in stages], color="tab:orange", label="longest path, cells (yosys ltp)"
        )
        ax.set_ylabel("cells on the longest path")
    ax2.plot(names, [s["lut"] for s in stages], "o-", color="tab:blue", label="LUT (yosys)")
    ax2.set_ylabel("LUT")
    ax.set_title(f"{title}: pipeline stages at {clock_ns:g} ns (yosys synthesis)", fontsize=9)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
    return save(fig, path)
