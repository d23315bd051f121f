"""Wall time of a 4-point scan of eg_mlp with 1 and with 2 LocalCluster workers, and the speed-up.

    python tools/bench_scan.py [--grid bits=3,4 --grid sparsity=0,0.5] [--events 20000] [--epochs 5] [--no-synth]

Both scans run the same points (train, compile, verify bit for bit, report with yosys) from
scratch: each gets its own empty compile cache and scan directory, so the second scan reuses
nothing of the first. The data set is simulated once, before the clock starts. With one worker
a point may use every core (TensorFlow's threads); with two, each point gets half of them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--card", type=Path, default=ROOT / "models" / "eg_mlp.yaml")
    ap.add_argument("--grid", action="append", default=None)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--no-synth", action="store_true")
    args = ap.parse_args()
    from trigger_ml.data import simulate_dataset, write_h5
    from trigger_ml.pipeline import StageOptions
    from trigger_ml.progress import setup_logging
    from trigger_ml.scan import ScanSpec, parse_grid, scan

    setup_logging()
    work = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    data = write_h5(simulate_dataset(args.events, seed=1), work / "data.h5")
    grid = parse_grid((args.grid or ["bits=3,4", "sparsity=0,0.5"]) + [f"epochs={args.epochs}"])
    walls = {}
    for n in (int(w) for w in args.workers.split(",")):
        os.environ["TRIGGER_ML_CACHE"] = str(work / f"cache-{n}")
        spec = ScanSpec(
            card=args.card,
            grid=grid,
            out=work / f"scan-{n}",
            workers=n,
            data=data,
            options=StageOptions(synth=not args.no_synth),
        )
        t = time.perf_counter()
        res = scan(spec)
        walls[n] = time.perf_counter() - t
        per_point = [sum(r["seconds"].values()) for r in res.results]
        print(
            f"{n} worker(s): {len(res.results)} points ({len(res.failed)} failed) in {walls[n]:.1f} s wall; "
            f"point times {', '.join(f'{s:.0f}' for s in per_point)} s",
            flush=True,
        )
    if 1 in walls and 2 in walls:
        print(f"speed-up 2 workers vs 1: {walls[1] / walls[2]:.2f}x on {os.cpu_count()} cores")
    print(f"scan directories under {work}")


if __name__ == "__main__":
    main()
