"""yosys synthesis wall time per reference model, and its counts against other sources.

    python tools/bench_report.py [--firmware firmware] [--models eg_mlp,eg_cnn,ad_autoencoder] [--compare-abc9]

For each compiled model (`trigger-ml run --to compile` makes them) it synthesises the da4ml RTL
with the report's default flow (stages in parallel; LUTs by ABC9 for small stages, classic ABC for large ones) in an empty cache and
prints the wall time (target, issue 6: <= 60 s per reference model), the LUT/FF/CARRY counts
and da4ml's estimate beside them. With --compare-abc9 it also runs yosys's own `synth_xilinx`
LUT mapping (ABC9, slow in WebAssembly) on the same stages and prints both counts and their
ratio, so the cheaper flow's agreement is measured, not assumed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--firmware", type=Path, default=Path("firmware"))
    ap.add_argument("--models", default="eg_mlp,eg_cnn,ad_autoencoder")
    ap.add_argument("--compare-abc9", action="store_true")
    args = ap.parse_args()
    os.environ["TRIGGER_ML_CACHE"] = tempfile.mkdtemp(prefix="bench-report-")
    from trigger_ml.compile import manifest
    from trigger_ml.config import load_card
    from trigger_ml.layout import FirmwareDir
    from trigger_ml.report.yosys import synthesize

    print(
        f"{'model':<16}{'flow':<7}{'wall s':>8}{'LUT':>9}{'FF':>8}{'CARRY':>8}{'DSP':>6}"
        f"{'da4ml LUT':>11}{'da4ml FF':>10}{'stages':>8}{'max stage s':>13}"
    )
    for name in args.models.split(","):
        fw = args.firmware / name
        m = manifest.read(fw)
        card = load_card(FirmwareDir(fw).card)
        est = m["rtl"]["estimate"]
        flows = ("auto", "abc9") if args.compare_abc9 else ("auto",)
        res = {}
        for flow in flows:
            t = time.perf_counter()
            syn = synthesize(FirmwareDir(fw).rtl, card.firmware.part, flow=flow)
            wall = time.perf_counter() - t
            tot = syn["totals"]
            res[flow] = tot
            print(
                f"{name:<16}{flow:<7}{wall:>8.1f}{tot['lut']:>9,.0f}{tot['ff']:>8,.0f}{tot['carry']:>8,.0f}{tot['dsp']:>6,.0f}"
                f"{est['lut']:>11,.0f}{est['ff']:>10,}{len(syn['stages']):>8}"
                f"{max(s['seconds'] for s in syn['stages']):>13.1f}",
                flush=True,
            )
        if "abc9" in res:
            r = {k: res["auto"][k] / res["abc9"][k] for k in ("lut", "ff", "carry") if res["abc9"][k]}
            print(f"{'':<16}auto / abc9: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))
        print(
            f"{'':<16}yosys (auto) / da4ml estimate: LUT {res['auto']['lut'] / est['lut']:.3f}, "
            f"FF {res['auto']['ff'] / max(1, est['ff']):.3f}"
        )


if __name__ == "__main__":
    main()
