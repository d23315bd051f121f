"""yosys LUT count of one scan point: python synth.py TAG (one yosys job at a time)."""
import json, sys, time
from functools import partial
from pathlib import Path
from trigger_ml.report import yosys as Y
Y_synth = Y.synthesize
Y.synthesize = partial(Y_synth, jobs=1)            # one core: another engineer is benchmarking
from trigger_ml.report.build import build

tag = sys.argv[1]
t = time.time()
r = build(f"/work/to-cache/fw/{tag}", synth=True)
HERE = Path(__file__).resolve().parent
(HERE / "logs" / f"synth_{tag}.json").write_text(json.dumps(r, indent=1, default=str))
tot = r["sources"]["yosys"]["totals"]
print(json.dumps({"figures": r["figures"], "yosys_totals": tot, "budget": r["budget"], "s": time.time() - t}, indent=1, default=str))
yf = HERE / "yosys.json"
d = json.loads(yf.read_text()) if yf.exists() else {}
d[tag] = {"lut": tot.get("lut"), "dsp": tot.get("dsp"), "ff": tot.get("ff")}
yf.write_text(json.dumps(d, indent=1))
