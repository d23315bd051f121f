"""A scan's results: one row per point (CSV and Markdown), the Pareto front and its plot.

The physics figure is the efficiency at the cut-based baseline's fake rate for classifiers and
the smallest per-class AUC for anomaly detectors (both from the point's test split); the cost is
the LUT count from the best source the report had (yosys synthesis, else da4ml's estimate),
named in the `lut_source` column.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

COLUMNS = (
    "id",
    "params",
    "status",
    "physics",
    "physics_float",
    "auc",
    "auc_float",
    "exact",
    "latency_cycles",
    "latency_ns",
    "lut",
    "ff",
    "dsp",
    "lut_source",
    "pareto",
    "error",
)


def physics_of(row: dict[str, Any]) -> tuple[str, float | None, float | None]:
    """(name, quantized, float) of the point's physics figure."""
    phys = row.get("physics")
    if not phys:
        return "physics", None, None
    q, f = phys["quantized"], phys["float"]
    if "efficiency_at_baseline_fake_rate" in q:
        return (
            "efficiency at the baseline's fake rate",
            q["efficiency_at_baseline_fake_rate"],
            f.get("efficiency_at_baseline_fake_rate"),
        )
    if "per_class" in q:
        return (
            "smallest anomaly-class AUC",
            min(v["auc"] for v in q["per_class"].values()),
            min(v["auc"] for v in f["per_class"].values()),
        )
    return "physics", None, None


def _fig(row: dict[str, Any], name: str) -> tuple[float | None, str]:
    f = row.get("figures", {}).get(name)
    return (f["value"], f["source"]) if f else (None, "")


def table(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows in scan order, with the Pareto-optimal points marked."""
    rows = []
    for r in results:
        _, phys, phys_f = physics_of(r)
        q = r.get("physics", {}).get("quantized", {})
        f = r.get("physics", {}).get("float", {})
        exact = r.get("verify", {}).get("exact", [])
        compared = sum(e["compared"] for e in exact)
        mismatched = sum(e["mismatched"] for e in exact)
        lut, lut_src = _fig(r, "lut")
        err = r.get("error")
        rows.append(
            {
                "id": r["id"],
                "params": " ".join(f"{k}={v}" for k, v in r["params"].items()),
                "status": r["status"],
                "physics": phys,
                "physics_float": phys_f,
                "auc": q.get("auc"),
                "auc_float": f.get("auc"),
                "exact": (f"{compared - mismatched}/{compared}" if exact else ""),
                "latency_cycles": _fig(r, "latency_cycles")[0],
                "latency_ns": _fig(r, "latency_ns")[0],
                "lut": lut,
                "ff": _fig(r, "ff")[0],
                "dsp": _fig(r, "dsp")[0],
                "lut_source": lut_src,
                "pareto": False,
                "error": f"{err['stage']}: {err['type']}: {err['message']}" if err else "",
            }
        )
    for i in pareto_front(rows):
        rows[i]["pareto"] = True
    return rows


def pareto_front(rows: list[dict[str, Any]]) -> list[int]:
    """Indices of the points no other point beats: physics at least as good for at most the LUTs,
    one of them strictly (exact points only: a mismatch is not a design)."""
    ok = [
        i
        for i, r in enumerate(rows)
        if r["status"] == "ok"
        and r["physics"] is not None
        and r["lut"] is not None
        and r["exact"]
        and r["exact"].split("/")[0] == r["exact"].split("/")[1]
    ]

    def beats(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return (
            a["physics"] >= b["physics"]
            and a["lut"] <= b["lut"]
            and (a["physics"] > b["physics"] or a["lut"] < b["lut"])
        )

    return [i for i in ok if not any(beats(rows[j], rows[i]) for j in ok if j != i)]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        return f"{v:,.0f}" if v.is_integer() or abs(v) >= 10 else f"{v:.4f}"
    return str(v)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    from trigger_ml.atomic import atomic_file

    with atomic_file(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r[k] is None else r[k]) for k in COLUMNS})


def markdown(rows: list[dict[str, Any]], physics_name: str, title: str) -> str:
    from trigger_ml.report.build import md_table

    head = [
        "point",
        "status",
        physics_name + " (quantized / float)",
        "exact",
        "latency",
        "LUT / FF / DSP",
        "LUT source",
        "Pareto",
    ]
    body = []
    for r in rows:
        phys = f"{_cell(r['physics'])} / {_cell(r['physics_float'])}" if r["physics"] is not None else ""
        lat = f"{_cell(r['latency_cycles'])} cycles, {_cell(r['latency_ns'])} ns" if r["latency_ns"] is not None else ""
        res = " / ".join(_cell(r[k]) for k in ("lut", "ff", "dsp")) if r["lut"] is not None else ""
        status = r["status"] if not r["error"] else f"failed ({r['error']})"
        body.append([r["params"], status, phys, r["exact"], lat, res, r["lut_source"], _cell(r["pareto"])])
    return f"# {title}\n\n{md_table(head, body)}"


def plot(rows: list[dict[str, Any]], physics_name: str, title: str, path: Path) -> bool:
    """Physics vs LUTs, coloured by latency, Pareto-optimal points ringed and joined; False if nothing to plot."""
    from trigger_ml.plotting import plt, save

    pts = [r for r in rows if r["status"] == "ok" and r["physics"] is not None and r["lut"] is not None]
    if not pts:
        return False
    fig, ax = plt.subplots(figsize=(7.5, 5))
    lat = [r["latency_ns"] or 0.0 for r in pts]
    sc = ax.scatter([r["lut"] for r in pts], [r["physics"] for r in pts], c=lat, cmap="viridis", s=60, zorder=3)
    fig.colorbar(sc, ax=ax, label="latency [ns]")
    front = sorted((r for r in pts if r["pareto"]), key=lambda r: r["lut"])
    if front:
        ax.step([r["lut"] for r in front], [r["physics"] for r in front], where="post", color="tab:red", lw=1, zorder=2)
        ax.scatter(
            [r["lut"] for r in front],
            [r["physics"] for r in front],
            s=180,
            facecolors="none",
            edgecolors="tab:red",
            lw=1.5,
            zorder=4,
            label="Pareto-optimal",
        )
        ax.legend(loc="lower right")
    for r in pts:
        ax.annotate(r["params"], (r["lut"], r["physics"]), textcoords="offset points", xytext=(5, 5), fontsize=7)
    failed = sum(r["status"] != "ok" for r in rows)
    ax.set_xlabel(f"LUT ({pts[0]['lut_source'].split(' (')[0]})")
    ax.set_ylabel(physics_name)
    ax.set_title(f"{title}: {len(pts)} points" + (f", {failed} failed (see table)" if failed else ""), fontsize=10)
    ax.grid(alpha=0.3)
    save(fig, path)
    return True
