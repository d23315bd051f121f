"""Verification throughput per level, and Verilator build times, measured in one run.

    python tools/bench_verify.py [--events 1000000] [--runs runs] [--models eg_mlp,eg_cnn,ad_autoencoder]

On eg_mlp (a trained run in <runs>/eg_mlp, else a short training of the default card), over
--events simulated windows, events per second of each level:
- Keras: the quantized model evaluated in float64 (the golden model);
- stock hls4ml `predict`: the same hls4ml project compiled by hls4ml (`ModelGraph.compile`,
  g++ -O3) and run through its own Python-side loop;
- trigger-ml C simulation: the emulator library (one C call per batch), on 1 thread and split
  over all cores;
- da4ml software model (its C++ interpreter), 1 thread and all cores;
- Verilator RTL simulation of the da4ml Verilog.
Every level's outputs are checked equal to the Keras level's (exact), so each figure is a
bit-exact level. Target (issue 5): fastest bit-exact level >= 10 x stock hls4ml predict.

Then, for each model, the Verilator build in an empty cache (our -O0 build; target <= 20 s),
with the outputs checked identical to the da4ml software model.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from bench_compile import trained_run  # noqa: E402


def _rate(name: str, fn, x: np.ndarray, ref: np.ndarray | None, rows: list) -> np.ndarray:
    t = time.perf_counter()
    y = fn(x)
    dt = time.perf_counter() - t
    exact = "reference" if ref is None else ("exact" if np.array_equal(y, ref) else "MISMATCH")
    rows.append((name, len(x) / dt, dt, exact))
    print(f"  {name:<38} {len(x) / dt:>14,.0f} events/s  {dt:8.2f} s  {exact}", flush=True)
    return y


def _stock(fw: Path, work: Path):
    """The firmware's hls4ml project, compiled and run by hls4ml itself."""
    from trigger_ml.compile import hls
    from trigger_ml.config import load_card
    from trigger_ml.layout import FirmwareDir
    from trigger_ml.train.fit import load_model

    card = load_card(FirmwareDir(fw).card)
    with contextlib.redirect_stdout(io.StringIO()):
        hm = hls.convert(
            load_model(FirmwareDir(fw).model),
            card,
            work / "stock",
            card.firmware.strategy,
            card.firmware.backend,
            "stock",
        )
        t = time.perf_counter()
        hm.compile()
    print(f"  (stock hls4ml compile {time.perf_counter() - t:.1f} s)")

    def predict(x):
        with contextlib.redirect_stdout(io.StringIO()):
            return np.asarray(hm.predict(np.ascontiguousarray(x, dtype=np.float64)), dtype=np.float64).reshape(
                len(x), -1
            )

    return predict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=Path, default=Path("runs"))
    ap.add_argument("--models", default="eg_mlp,eg_cnn,ad_autoencoder", help="models for the Verilator build times")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    os.environ["TRIGGER_ML_CACHE"] = str(work / "cache")
    from trigger_ml.compile import Options, compile_run
    from trigger_ml.data import simulate_dataset
    from trigger_ml.layout import FirmwareDir
    from trigger_ml.verify import levels as L
    from trigger_ml.verify.exact import inputs_for

    cores = os.cpu_count() or 1
    try:
        fws = {}
        for name in args.models.split(","):
            run = trained_run(name, args.runs, work)
            fws[name] = compile_run(run, work / "fw" / name, Options()).out
        fw = fws.get("eg_mlp") or compile_run(trained_run("eg_mlp", args.runs, work), work / "fw" / "eg_mlp").out
        print(f"simulating {args.events:,} windows")
        x = inputs_for(fw, simulate_dataset(args.events, seed=21), 0)["data"]
        print(f"eg_mlp, {len(x):,} events, {cores} cores:")
        rows: list = []
        q = L.QuantizedModel.load(FirmwareDir(fw).model)
        ref = _rate("Keras quantized model (float64)", q.predict, x, None, rows)
        _rate("stock hls4ml predict", _stock(fw, work), x, ref, rows)
        cs = L.csim(fw)
        _rate(
            "trigger-ml C simulation, 1 thread",
            lambda v: cs.iface.from_raw(cs.predict_raw(cs.iface.to_raw(v), threads=1)),
            x,
            ref,
            rows,
        )
        _rate(f"trigger-ml C simulation, {cores} threads", cs.predict, x, ref, rows)
        sw = L.software_model(fw)
        _rate(
            "da4ml software model, 1 thread",
            lambda v: np.asarray(sw.comb.predict(v, n_threads=1), dtype=np.float64).reshape(len(v), -1),
            x,
            ref,
            rows,
        )
        _rate(f"da4ml software model, {cores} threads", sw.predict, x, ref, rows)
        rtl = L.rtl_sim(fw, sw.comb)
        _rate("Verilator RTL simulation", rtl.predict, x, ref, rows)
        stock = next(r[1] for r in rows if r[0] == "stock hls4ml predict")
        exact_rows = [r for r in rows[1:] if r[3] == "exact"]
        best = max(exact_rows, key=lambda r: r[1])
        print(
            f"fastest bit-exact level: {best[0]} at {best[1]:,.0f} events/s = {best[1] / stock:.1f} x stock hls4ml "
            f"predict ({stock:,.0f} events/s); target >= 10 x"
        )
        print("Verilator build (empty cache, -O0), outputs against the da4ml software model on 20,000 events:")
        small = simulate_dataset(20_000, seed=22)
        for name, f in fws.items():
            os.environ["TRIGGER_ML_CACHE"] = str(work / f"cache-verilate-{name}")
            sw_m = L.software_model(f)
            sim = L.rtl_sim(f, sw_m.comb)
            xs = inputs_for(f, small, 0)["data"]
            same = np.array_equal(sim.predict(xs), sw_m.predict(xs))
            print(
                f"  {name:<16} build {sim.build_seconds:6.1f} s  (target <= 20 s)  outputs {'identical' if same else 'DIFFER'}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
