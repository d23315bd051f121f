"""One scan point: write a modified card, train, compile, record metrics + da4ml estimate.
usage: python point.py MODEL BITS SPARSITY [LAYERS e.g. 16-8]"""
import json, sys, time, copy
from pathlib import Path
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = Path("/work/to-cache/sim200k_seed1.h5")

model, bits, sp = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sizes = [int(s) for s in sys.argv[4].split("-")] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
seed = int(sys.argv[5]) if len(sys.argv) > 5 else None

src = yaml.safe_load((ROOT / "models" / f"{model}.yaml").read_text())
card_d = copy.deepcopy(src)
card_d["quantization"]["weight_bits"] = bits
card_d["pruning"]["default"] = sp
if seed is not None:
    card_d["training"]["seed"] = seed
if sizes:
    hidden = [l for l in card_d["layers"] if l["type"] == "dense"][:-1]
    assert len(hidden) == len(sizes), (hidden, sizes)
    for l, u in zip(hidden, sizes):
        l["units"] = u
tag = f"{model}_b{bits}_s{int(round(sp*100))}" + (f"_h{'-'.join(map(str, sizes))}" if sizes else "") + (f"_seed{seed}" if seed is not None else "")
card_path = HERE / f"{tag}.yaml"
card_path.write_text(yaml.safe_dump(card_d, sort_keys=False))

from trigger_ml.config import load_card
from trigger_ml.data import read_dataset, simulate_dataset, write_h5
from trigger_ml.train.fit import train
from trigger_ml.compile import compile_run

if not DATA.exists():
    t = time.time(); ds = simulate_dataset(200_000, seed=1); write_h5(ds, DATA); print("simulated", time.time() - t, flush=True)
ds = read_dataset(DATA)
card = load_card(card_path)
out = Path("/work/to-cache/runs") / tag
fw = Path("/work/to-cache/fw") / tag
t0 = time.time()
m = train(card, ds, out)
t1 = time.time()
res = compile_run(out, fw)
t2 = time.time()
est = res.manifest["rtl"].get("estimate", {})
q, f = m["quantized"], m["float"]
rec = {"model": model, "tag": tag, "seed": card.training.seed, "bits": bits, "sparsity": sp,
       "layers": "-".join(str(l["units"]) for l in card_d["layers"] if l["type"] in ("dense", "conv2d") and "units" in l) or None,
       "lut": est.get("lut"), "ff": est.get("ff"), "stages": est.get("stages"),
       "latency_ns": (est.get("stages") or 0) * card.firmware.clock_ns, "estimate": est,
       "sparsity_meas": m["sparsity"], "ebops": m["ebops"], "epochs": m["epochs_run"],
       "train_s": t1 - t0, "compile_s": t2 - t1, "fw_dir": str(fw), "run_dir": str(out)}
if card.task == "classifier":
    rec.update(auc_q=q["auc"], auc_f=f["auc"], auc_loss=f["auc"] - q["auc"],
               eff_q=q["efficiency_at_baseline_fake_rate"], eff_f=f["efficiency_at_baseline_fake_rate"],
               baseline_eff=q["baseline_efficiency"])
else:
    for c, v in q["per_class"].items():
        rec[f"auc_{c}"] = v["auc"]; rec[f"auc_f_{c}"] = f["per_class"][c]["auc"]
        rec[f"auc_loss_{c}"] = f["per_class"][c]["auc"] - v["auc"]
with open(HERE / "results.jsonl", "a") as fh:
    fh.write(json.dumps(rec) + "\n")
print(json.dumps(rec, indent=1, default=str))
