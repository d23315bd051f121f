"""`trigger-ml report`: report.json, report.md and report.html (plots embedded) of a compiled
model, and a one-table summary across models (the trigger-menu view).

Everything lands in `<firmware>/report/`, written in a temporary directory and renamed into
place. yosys results are cached by the hash of the RTL sources and the synthesis command, so a
second report of an unchanged design does not synthesise again.

yosys is not run when da4ml estimates more than `SYNTH_MAX_LUT` LUTs (the report then gives
da4ml's estimate and says why; `trigger-ml report --synth-max-lut 0` synthesises anyway). Its time
grows with the design: measured on this project's 2-core machine (2026-11-26/27, beside other
jobs), jetTagger_Conv2D_Small_NoBatchNorm (509,122 LUT after synthesis, 25 stages) took 1,097 to
2,788 s by load; conv2d_small_mp_keras (da4ml: 2,023,672 LUT, 37 stages, 12.6 MB of Verilog) had
not finished after 2,750 s. A design above the cap needs more than half of the default part
(xcvu13p: 1,728,000 LUT), far more than a Level-1 trigger algorithm is given.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from trigger_ml.atomic import atomic_dir
from trigger_ml.compile import cache, manifest, vendor
from trigger_ml.compile.cache import digest
from trigger_ml.compile.rtl import CLOCK_UNCERTAINTY_NS
from trigger_ml.config import load_card
from trigger_ml.fpga import MODEL_VERSION, family_of
from trigger_ml.layout import REPORT, FirmwareDir
from trigger_ml.report import analytic, budget, figures, plots, yosys
from trigger_ml.timing import estimate as timing_estimate
from trigger_ml.train.fit import load_model
from trigger_ml.verify.gates import VERDICT, Check

log = logging.getLogger(__name__)
SYNTH_MAX_LUT = 1_000_000  # da4ml's LUT estimate above which yosys is not run (0: no cap)
LABELS = {
    "latency_cycles": "latency (cycles)",
    "latency_ns": "latency (ns)",
    "ii": "II (cycles)",
    "lut": "LUT",
    "ff": "FF",
    "carry": "CARRY",
    "dsp": "DSP",
    "bram": "BRAM (36k)",
}


def synthesize_cached(rtl_dir: Path, part: str) -> tuple[dict[str, Any], bool]:
    """yosys synthesis of `rtl_dir`, from the cache when the RTL and the command are unchanged."""
    src = Path(rtl_dir) / "src"
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix in (".v", ".sv", ".mem"))
    key = digest(
        *(b for p in files for b in (p.relative_to(src).as_posix(), p.read_bytes())),
        family_of(part).name,
        yosys.SCRIPT_VERSION,
        MODEL_VERSION,
        part,
    )[:32]
    hit = cache.root().yosys(key)
    if cache.get(hit) is not None:
        return json.loads(hit.read_text()), True
    syn = yosys.synthesize(rtl_dir, part)
    cache.put_text(json.dumps(syn, indent=1), hit)
    return syn, False


def too_big_for_yosys(rtl: dict[str, Any], max_lut: int = SYNTH_MAX_LUT) -> str | None:
    """Why yosys is not run on this RTL (the manifest's `rtl` entry), or None when it is."""
    lut = (rtl.get("estimate") or {}).get("lut")
    if not max_lut or lut is None or lut <= max_lut:
        return None
    return (
        f"yosys not run: da4ml estimates {lut:,.0f} LUT, above the report's cap of {max_lut:,} "
        "(`trigger-ml report --synth-max-lut 0` runs yosys anyway)"
    )


def build(fw_dir: str | Path, synth: bool = True, synth_max_lut: int = SYNTH_MAX_LUT) -> dict[str, Any]:
    """Collect every figure of a compiled model (synthesising the RTL with yosys if asked and if
    da4ml estimates at most `synth_max_lut` LUTs)."""
    return _build(Path(fw_dir), synth, synth_max_lut)[0]


def _build(fw_dir: Path, synth: bool, synth_max_lut: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The report dict and the full yosys result (per-stage cells, for synth.json and the plot)."""
    fw = FirmwareDir(fw_dir)
    m = manifest.read(fw.root)
    card = load_card(fw.card)
    clock = card.firmware.clock_ns
    vendor_rep, vendor_note = vendor.read(fw.root)  # before yosys: a bad vendor report fails at once
    if vendor_note:
        log.warning("%s: %s", card.name, vendor_note)
    vendor_figs = figures.vendor_figures(vendor_rep, clock)
    t0 = time.perf_counter()
    est = analytic.estimate(load_model(fw.model), m["layers"], card.firmware.reuse_factor)
    syn, cached = (None, False)
    run_yosys = synth and m["rtl"].get("written")
    skipped = too_big_for_yosys(m["rtl"], synth_max_lut) if run_yosys else None
    if skipped:
        log.warning("%s: %s", card.name, skipped)
    elif run_yosys:
        syn, cached = synthesize_cached(fw.rtl, card.firmware.part)
    best = figures.best(fw.root, clock, syn, est, vendor_figs)
    timing = (
        timing_estimate.estimate(syn, clock, CLOCK_UNCERTAINTY_NS, int(m["rtl"]["estimate"]["stages"]), fw.root)
        if syn
        else None
    )
    if timing and best.get("latency_ns", figures.Figure(0, "")).source == "da4ml RTL structure":
        verdict = (
            "every stage expected to meet it" if timing["met"] else f"NOT expected to meet it: {timing['worst_stage']}"
        )
        best["latency_ns"] = figures.Figure(
            best["latency_ns"].value,
            best["latency_ns"].source,
            f"{timing['cycles']} cycles x {clock:g} ns target clock; {verdict} "
            f"({timing['source']}, est. Fmax {timing['fmax_mhz']:g} MHz)",
        )
    checks = budget.check(card.budget, best)
    metrics = json.loads(fw.metrics.read_text()) if fw.metrics.exists() else {}
    weights = sum(r["weights"] for r in est["layers"])
    nonzero = sum(r["nonzero"] for r in est["layers"])
    rep = {
        "model": card.name,
        "firmware_dir": str(fw.root),
        "target": {
            "part": card.firmware.part,
            "clock_ns": clock,
            "strategy": card.firmware.strategy,
            "backend": card.firmware.backend,
            "io_type": card.firmware.io_type,
        },
        "figures": {q: f.to_dict() for q, f in best.items()},
        "budget": [
            {"check": c.name, "ok": c.ok, "value": c.value, "limit": c.limit, "source": c.detail} for c in checks
        ],
        "budget_ok": all(c.ok is not False for c in checks),
        "timing": timing,
        **({"synth_skipped": skipped} if skipped else {}),  # only then: reports of synthesised designs keep their keys
        **({"vendor_ignored": vendor_note} if vendor_note else {}),
        "sources": {
            "vendor": {q: f.to_dict() for q, f in vendor_figs.items()},
            "yosys": (
                {k: syn[k] for k in ("tool", "command", "family", "totals", "seconds")}
                | {
                    "cached": cached,
                    "stages": [
                        {
                            k: s.get(k)
                            for k in (
                                "module",
                                "lut",
                                "ff",
                                "carry",
                                "dsp",
                                "bram",
                                "depth_cells",
                                "lut_by_size",
                                "timing",
                            )
                        }
                        for s in syn["stages"]
                    ],
                }
            )
            if syn
            else None,
            "da4ml": m["rtl"].get("estimate") if m["rtl"].get("written") else None,
            "analytic": {"model": est["model"], "totals": est["totals"]},
        },
        "layers": est["layers"],
        "precisions": m["layers"],
        "sparsity": {
            "weights": weights,
            "nonzero": nonzero,
            "fraction_pruned": 1 - nonzero / weights if weights else 0.0,
        },
        "physics": {k: metrics[k] for k in ("quantized", "float", "delta") if k in metrics},
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return rep, syn


def budget_verdict(fw_dir: str | Path, synth: bool = True) -> list[Check]:
    """The budget verdict of a compiled model, as the report gives it: the card's limits against the
    best figures available (vendor > yosys, synthesised now when missing and `synth` > da4ml >
    analytic), each check naming its figure's source. `trigger-ml verify` and `run` both ask here."""
    rep = build(fw_dir, synth)
    return [Check(c["check"], c["ok"], c["value"], c["limit"], c["source"]) for c in rep["budget"]]


def md_table(head: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (the report, the trigger menu and the run summary use it)."""
    return "".join("| " + " | ".join(str(c) for c in r) + " |\n" for r in [head, ["---"] * len(head), *rows])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(v)


def _physics_rows(phys: dict[str, Any]) -> list[tuple[str, str, str]]:
    q, f = phys.get("quantized", {}), phys.get("float", {})
    rows = []
    for key in ("auc", "efficiency_at_baseline_fake_rate", "baseline_efficiency", "baseline_fake_rate"):
        if key in q:
            rows.append((key, _fmt(q[key]), _fmt(f.get(key, float("nan")))))
    for cls, v in q.get("per_class", {}).items():
        fv = f.get("per_class", {}).get(cls, {})
        rows.append((f"{cls} AUC", _fmt(v["auc"]), _fmt(fv.get("auc", float("nan")))))
        rows.append(
            (f"{cls} TPR at FPR 1e-3", _fmt(v["tpr_at_fpr_1e-3"]), _fmt(fv.get("tpr_at_fpr_1e-3", float("nan"))))
        )
    return rows


def _tables(rep: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table, shared by the Markdown and the HTML."""
    t = rep["target"]
    out = [
        (
            "Latency and resources",
            ["quantity", "value", "source", "note"],
            [[LABELS[q], _fmt(f["value"]), f["source"], f.get("note", "")] for q, f in rep["figures"].items()],
        )
    ]
    out.append(
        (
            "Budget (model card)",
            ["check", "value", "limit", "result", "source"],
            [
                [
                    c["check"],
                    _fmt(c["value"]) if c["value"] is not None else "",
                    _fmt(c["limit"]) if c["limit"] is not None else "",
                    "**FAIL**" if c["ok"] is False else VERDICT[c["ok"]],
                    c["source"],
                ]
                for c in rep["budget"]
            ],
        )
    )
    syn = rep["sources"]["yosys"]
    if syn:
        out.append(
            (
                f"Pipeline stages (yosys {syn['command']}, {syn['seconds']:.0f} s{', cached' if syn['cached'] else ''})",
                ["stage", "LUT", "CARRY", "longest path (cells)", "LUT levels", "carry bits", "est. delay (ns)"],
                [
                    [
                        s["module"],
                        _fmt(s["lut"]),
                        _fmt(s["carry"]),
                        _fmt(s["depth_cells"]),
                        *(
                            (
                                _fmt(s["timing"]["lut_levels"]),
                                _fmt(s["timing"]["carry_bits"]),
                                f"{s['timing']['delay_ns']:.2f}",
                            )
                            if s.get("timing")
                            else ("", "", "")
                        ),
                    ]
                    for s in syn["stages"]
                ],
            )
        )
    tm = rep.get("timing")
    if tm:
        out.append(
            (
                f"Timing (estimate: {tm['model']} delay model on the yosys netlist, docs/timing.md)",
                [
                    "target clock",
                    "worst stage",
                    "est. delay",
                    "LUT levels",
                    "carry bits",
                    "est. Fmax",
                    "cycles",
                    "latency at target",
                    "target met (est.)",
                ],
                [
                    [
                        f"{tm['clock_ns']:g} ns",
                        tm["worst_stage"],
                        f"{tm['worst_stage_delay_ns']:.2f} ns",
                        tm["worst_stage_lut_levels"],
                        tm["worst_stage_carry_bits"],
                        f"{tm['fmax_mhz']:.0f} MHz",
                        tm["cycles"],
                        f"{tm['latency_ns']:g} ns",
                        "yes" if tm["met"] else "**NO**",
                    ]
                ],
            )
        )
        if tm.get("vendor"):
            v = tm["vendor"]
            out.append(
                (
                    "Timing (vendor report, takes precedence)",
                    ["source", "WNS", "critical path", "Fmax", "met", "model / vendor"],
                    [
                        [
                            v["source"],
                            f"{v['wns_ns']:.3f} ns",
                            f"{v['critical_path_ns']:.3f} ns",
                            f"{v['fmax_mhz']:.0f} MHz",
                            "yes" if v["met"] else "**NO**",
                            f"{tm['model_over_vendor']:.3f}",
                        ]
                    ],
                )
            )
    da = rep["sources"]["da4ml"]
    if da:
        out.append(("da4ml estimate", ["LUT", "FF", "stages"], [[_fmt(da["lut"]), _fmt(da["ff"]), _fmt(da["stages"])]]))
    out.append(
        (
            f"Layers (analytic estimate: {rep['sources']['analytic']['model']})",
            ["layer", "weights", "non-zero", "pruned", "in/w/acc bits", "multiplications", "LUT (est.)"],
            [
                [
                    r["layer"],
                    _fmt(r["weights"]),
                    _fmt(r["nonzero"]),
                    f"{100 * r['sparsity']:.0f}%",
                    f"{r['input_bits']}/{r['weight_bits']}/{r['accum_bits']}",
                    _fmt(r["multiplications"]),
                    _fmt(r["lut"]),
                ]
                for r in rep["layers"]
            ],
        )
    )
    out.append(
        (
            "Precisions (hls4ml, derived from the quantized model)",
            ["layer", "class", "result", "weight", "accum"],
            [[r["layer"], r["class"], r["result"], r.get("weight", ""), r.get("accum", "")] for r in rep["precisions"]],
        )
    )
    phys = _physics_rows(rep["physics"])
    if phys:
        out.append(
            (
                "Physics from training (test split; quantized vs float twin)",
                ["metric", "quantized", "float"],
                [list(r) for r in phys],
            )
        )
    out.insert(
        0,
        (
            "Target",
            ["part", "clock", "strategy", "backend", "io"],
            [[t["part"], f"{t['clock_ns']:g} ns", t["strategy"], t["backend"], t["io_type"]]],
        ),
    )
    return out


def markdown(rep: dict[str, Any], plot_files: list[str]) -> str:
    lines = [
        f"# {rep['model']}: firmware report",
        "",
        "Every figure names its source: vendor report > yosys synthesis > da4ml estimate > analytic estimate.",
        "",
    ] + ([f"**{rep['synth_skipped']}**", ""] if rep.get("synth_skipped") else [])
    for title, head, rows in _tables(rep):
        lines += [f"## {title}", "", md_table(head, rows)]
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plot_files]
    return "\n".join(lines) + "\n"


def to_html(rep: dict[str, Any], plot_dir: Path, plot_files: list[str]) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(rep['model'])} report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;margin:8px 0}"
        "td,th{border:1px solid #bbb;padding:3px 8px;font-size:13px}th{background:#eee}img{max-width:100%;margin:6px 0}"
        ".fail{color:#b00;font-weight:bold}</style></head><body>",
        f"<h1>{html.escape(rep['model'])}: firmware report</h1>",
        "<p>Every figure names its source: vendor report &gt; yosys synthesis &gt; da4ml estimate &gt; analytic estimate.</p>",
    ] + ([f"<p><b>{html.escape(rep['synth_skipped'])}</b></p>"] if rep.get("synth_skipped") else [])
    for title, head, rows in _tables(rep):
        parts.append(
            f"<h2>{html.escape(title)}</h2><table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
        )
        for r in rows:
            cells = []
            for c in r:
                c = str(c)
                cls = " class='fail'" if c == "**FAIL**" else ""
                cells.append(f"<td{cls}>{html.escape(c.replace('**', ''))}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</table>")
    parts.append("<h2>Plots</h2>")
    for p in plot_files:
        data = base64.b64encode((plot_dir.parent / p).read_bytes()).decode()
        parts.append(
            f"<figure><img alt='{html.escape(p)}' src='data:image/png;base64,{data}'><figcaption>{html.escape(p)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write(fw_dir: str | Path, synth: bool = True, synth_max_lut: int = SYNTH_MAX_LUT) -> dict[str, Any]:
    """Build the report and write `<fw>/report/` atomically; returns the report dict."""
    fw = FirmwareDir(fw_dir)
    rep, syn = _build(fw.root, synth, synth_max_lut)
    with atomic_dir(fw.report, kind=REPORT) as tmp:
        pdir = tmp / "plots"
        pdir.mkdir()
        files = [
            plots.resources_per_layer({"layers": rep["layers"]}, rep["model"], pdir / "resources_per_layer.png"),
            plots.bit_widths(rep["precisions"], rep["model"], pdir / "bit_widths.png"),
        ]
        if syn is not None:
            files.append(plots.stage_depth(syn, rep["target"]["clock_ns"], rep["model"], pdir / "pipeline_stages.png"))
            (tmp / fw.synth.name).write_text(json.dumps(syn, indent=1))
        (tmp / fw.analytic.name).write_text(
            json.dumps(
                {"model": analytic.MODEL, "layers": rep["layers"], "totals": rep["sources"]["analytic"]["totals"]},
                indent=1,
            )
        )
        for png in sorted(fw.training_plots.glob("*.png")):  # training: ROC / anomaly ROCs, loss, weights
            shutil.copyfile(png, pdir / f"training_{png.name}")
            files.append(pdir / f"training_{png.name}")
        rel = [p.relative_to(tmp).as_posix() for p in files]
        rep["plots"] = rel
        (tmp / fw.report_json.name).write_text(json.dumps(rep, indent=1))
        (tmp / fw.report_md.name).write_text(markdown(rep, rel))
        (tmp / fw.report_html.name).write_text(to_html(rep, pdir, rel))
    return rep


def menu(reports: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """One row per model: the trigger-menu view."""
    head = ["model", "LUT", "FF", "DSP", "latency", "II", "budget", "physics", "LUT source"]
    rows = []
    for r in reports:
        f = r["figures"]
        q = r["physics"].get("quantized", {})
        phys = (
            f"AUC {q['auc']:.3f}"
            if "auc" in q
            else ", ".join(f"{c} {v['auc']:.2f}" for c, v in q.get("per_class", {}).items())
        )
        g = lambda k, f=f: _fmt(f[k]["value"]) if k in f else "n/a"  # noqa: E731
        lat = f"{g('latency_ns')} ns / {g('latency_cycles')} cyc"
        rows.append(
            [
                r["model"],
                g("lut"),
                g("ff"),
                g("dsp"),
                lat,
                g("ii"),
                "pass" if r["budget_ok"] else "FAIL",
                phys,
                f.get("lut", {}).get("source", "n/a"),
            ]
        )
    return head, rows
