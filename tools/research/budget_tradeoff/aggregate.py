"""results.jsonl -> docs/research/budget-tradeoff.csv + table fragment + plot."""
import json, csv
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs" / "research"
recs = {}
for line in (HERE / "results.jsonl").read_text().splitlines():
    r = json.loads(line); recs[r["tag"]] = r          # last wins
yos = json.loads((HERE / "yosys.json").read_text()) if (HERE / "yosys.json").exists() else {}
BUD = {"eg_mlp": (3000, 25), "ad_autoencoder": (15000, 50), "eg_cnn": (60000, 100)}
rows = []
REF = {(m, sd): recs.get(f"{m}_b6_s50" + ("" if sd == 1 else f"_seed{sd}")) for m in BUD for sd in (1, 2, 3)}   # the current card's float twin (pruning 0.5)
for r in recs.values():
    m = r["model"]
    if m == "eg_cnn" and not str(r["layers"]).startswith("conv"): r["layers"] = "conv4-" + r["layers"]
    lut_b, lat_b = BUD[m]
    if m == "ad_autoencoder":
        phys = (min(r["auc_spike"], r["auc_diphoton"]) >= 0.9 and
                max(r["auc_loss_spike"], r["auc_loss_diphoton"]) <= 0.01)
        metric = min(r["auc_spike"], r["auc_diphoton"])
    else:
        phys = r["auc_loss"] <= 0.005 and (m != "eg_mlp" or r["eff_q"] >= r["baseline_eff"] + 0.05)
        metric = r["eff_q"]
    ref = REF[(m, r.get("seed", 1))] or r
    if m == "ad_autoencoder":
        r["ref_loss"] = max(ref["auc_f_spike"] - r["auc_spike"], ref["auc_f_diphoton"] - r["auc_diphoton"])
        phys_ref = min(r["auc_spike"], r["auc_diphoton"]) >= 0.9 and r["ref_loss"] <= 0.01
    else:
        r["ref_loss"] = ref["auc_f"] - r["auc_q"]
        phys_ref = r["ref_loss"] <= 0.005 and (m != "eg_mlp" or r["eff_q"] >= r["baseline_eff"] + 0.05)
    phys = phys and phys_ref
    budget = r["lut"] <= lut_b and r["latency_ns"] <= lat_b
    y = yos.get(r["tag"]) or {}
    rows.append({**r, "metric": metric, "phys_ok": phys, "budget_ok": budget, "yosys_lut": y.get("lut"), "yosys_dsp": y.get("dsp")})
rows.sort(key=lambda r: (r["model"], r.get("seed", 1), r["bits"], r["sparsity"], r["layers"] or ""))
cols = ["model", "seed", "bits", "sparsity", "layers", "eff_q", "baseline_eff", "auc_q", "auc_f", "auc_loss",
        "auc_spike", "auc_diphoton", "auc_displaced", "auc_loss_spike", "auc_loss_diphoton", "ref_loss",
        "lut", "ff", "stages", "latency_ns", "yosys_lut", "yosys_dsp", "ebops", "phys_ok", "budget_ok", "train_s", "compile_s"]
with open(DOCS / "budget-tradeoff.csv", "w", newline="") as fh:
    w = csv.DictWriter(fh, cols, extrasaction="ignore"); w.writeheader()
    for r in rows:
        w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k in cols})

def f(x, n=3): return "" if x is None else f"{x:.{n}f}"
out = []
for m in ("eg_mlp", "ad_autoencoder", "eg_cnn"):
    rs = [r for r in rows if r["model"] == m]
    if not rs: continue
    out.append(f"\n### {m}\n")
    if m == "ad_autoencoder":
        out.append("| bits | sparsity | layers | AUC spike | AUC diphoton | AUC loss spike / diphoton (own float twin) | max AUC loss vs card float twin | da4ml LUT | FF | latency ns | yosys LUT / DSP | physics | budget |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rs:
            out.append(f"| {r['bits']}{'' if r.get('seed', 1) == 1 else ' (seed ' + str(r['seed']) + ')'} | {r['sparsity']} | {r['layers']} | {f(r['auc_spike'])} | {f(r['auc_diphoton'])} | "
                       f"{f(r['auc_loss_spike'],4)} / {f(r['auc_loss_diphoton'],4)} | {f(r['ref_loss'],4)} | {r['lut']:,} | {r['ff']:,} | {r['latency_ns']:.0f} | "
                       f"{'' if r['yosys_lut'] is None else format(r['yosys_lut'], ',') + ' / ' + str(r['yosys_dsp'])} | {'yes' if r['phys_ok'] else 'no'} | {'yes' if r['budget_ok'] else 'no'} |")
    else:
        out.append("| bits | sparsity | layers | eff @ baseline fake rate (baseline) | AUC q / own float twin | AUC loss (own twin) | AUC loss vs card float twin | da4ml LUT | FF | latency ns | yosys LUT / DSP | physics | budget |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rs:
            out.append(f"| {r['bits']}{'' if r.get('seed', 1) == 1 else ' (seed ' + str(r['seed']) + ')'} | {r['sparsity']} | {r['layers']} | {f(r['eff_q'])} ({f(r['baseline_eff'])}) | {f(r['auc_q'],4)} / {f(r['auc_f'],4)} | "
                       f"{f(r['auc_loss'],4)} | {f(r['ref_loss'],4)} | {r['lut']:,} | {r['ff']:,} | {r['latency_ns']:.0f} | "
                       f"{'' if r['yosys_lut'] is None else format(r['yosys_lut'], ',') + ' / ' + str(r['yosys_dsp'])} | {'yes' if r['phys_ok'] else 'no'} | {'yes' if r['budget_ok'] else 'no'} |")
(HERE / "table.md").write_text("\n".join(out) + "\n")
print("\n".join(out))

models = [m for m in ("eg_mlp", "ad_autoencoder", "eg_cnn") if any(r["model"] == m for r in rows)]
fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
MK = {3: "v", 4: "s", 6: "o", 8: "D", 2: "^", 5: "P"}
for ax, m in zip(axes[0], models):
    rs = [r for r in rows if r["model"] == m]
    for b in sorted({r["bits"] for r in rs}):
        for r in [r for r in rs if r["bits"] == b]:
            lbl = f"{b} bits" if r is [x for x in rs if x["bits"] == b][0] else None
            y = r["metric"]
            ax.scatter(r["lut"], y, marker=MK.get(b, "x"), s=60, label=lbl,
                       c="tab:green" if r["phys_ok"] else "tab:red", edgecolors="k")
            ax.annotate(f"s{r['sparsity']}" + ("" if r.get("seed", 1) == 1 else f" seed{r['seed']}"),
                        (r["lut"], y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            if r.get("yosys_lut"):
                ax.scatter(r["yosys_lut"], y, marker="*", s=120, c="gold", edgecolors="k",
                           label="yosys LUT (same point)" if not ax.get_legend_handles_labels()[1].count("yosys LUT (same point)") else None)
    ax.axvline(BUD[m][0], color="k", ls="--", label=f"budget {BUD[m][0]:,} LUT")
    if m == "ad_autoencoder":
        ax.axhline(0.9, color="b", ls=":", label="target AUC 0.9")
        ax.set_ylabel("min(spike, diphoton) AUC (quantized)")
    else:
        be = rs[0]["baseline_eff"]
        if m == "eg_mlp":
            ax.axhline(be + 0.05, color="b", ls=":", label=f"target: baseline {be:.3f} + 0.05")
        ax.axhline(be, color="gray", ls="-.", lw=0.8, label="cut-based baseline")
        ax.set_ylabel("efficiency at baseline fake rate (quantized)")
    ax.set_xlabel("LUT: da4ml estimate (markers), yosys synth_xilinx (stars" + (", + 81 DSP48)" if m == "ad_autoencoder" else ")"))
    ax.set_title(f"{m} (green: physics targets met)")
    ax.legend(fontsize=7); ax.grid(alpha=0.3)
fig.tight_layout(); fig.savefig(DOCS / "budget-tradeoff.png", dpi=120)
