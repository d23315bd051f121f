"""Wall time of `trigger-ml run` per stage and in total, as a newcomer's first run sees it.

    python tools/bench_run.py [--fast] [--models eg_mlp,eg_cnn,ad_autoencoder] [--keep DIR]

Runs the whole chain (simulate the default data set, train, compile, verify, report with
yosys) in a fresh directory with an empty trigger-ml cache, so nothing is reused; tool caches
of the machine (numba's, yowasp's WebAssembly) stay as they are. Then runs it again to show
that every stage is reused. Target (issue 7): <= 10 minutes in total on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--models", default="eg_mlp,eg_cnn,ad_autoencoder")
    ap.add_argument("--keep", type=Path, help="work here and keep the outputs (default: a temporary directory)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-run-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["TRIGGER_ML_CACHE"] = str(work / "cache")
    from trigger_ml.pipeline import Plan, run, summary_table
    from trigger_ml.progress import setup_logging

    setup_logging()
    plan = Plan(
        models=tuple(args.models.split(",")),
        fast=args.fast,
        cards=ROOT / "models",
        runs=work / "runs",
        firmware=work / "firmware",
        data_dir=work / "data",
    )
    try:
        t = time.perf_counter()
        out = run(plan)
        total = time.perf_counter() - t
        print(f"\n{'stage':<28}{'seconds':>10}")
        for stage, s in out.timings_s.items():
            print(f"{stage:<28}{s:>10.1f}")
        per_kind: dict[str, float] = {}
        for stage, s in out.timings_s.items():
            per_kind[stage.split(":")[0]] = per_kind.get(stage.split(":")[0], 0.0) + s
        print("by stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in per_kind.items()))
        print(f"total wall time: {total:.0f} s = {total / 60:.1f} min on {os.cpu_count()} cores (target <= 10 min)")
        t = time.perf_counter()
        again = run(plan)
        print(
            f"re-run: {len(again.skipped)} stages reused, {len(again.timings_s)} run, {time.perf_counter() - t:.1f} s"
        )
        head, rows = summary_table(out)
        for r in rows:
            print(" | ".join(f"{h}: {c}" for h, c in zip(head, r)))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
