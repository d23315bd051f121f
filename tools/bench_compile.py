"""Compile times of trigger-ml next to the stock hls4ml flow, measured in the same run.

    python tools/bench_compile.py [--models eg_mlp,eg_cnn] [--strategies latency] [--runs runs]

For each model (a trained run in <runs>/<model>, else a short training of the default card):
- stock hls4ml: config_from_keras_model + convert_from_keras_model + compile (default settings,
  the strategy set in the config), i.e. hls4ml's own g++ -O3 build of the C simulation;
- trigger-ml `compile_run` (hls4ml project, emulator/C simulation, da4ml Verilog + estimate):
  "first" in an empty cache (includes building the precompiled header and, for the first model
  of the process, da4ml's in-process numba JIT), "cold" for a model never compiled (machine
  caches warm), "cached" for a re-run on the unchanged model;
- trigger-ml without RTL (--no-rtl), cold, for the hls4ml part alone.
Targets (issue 4): cold <= 0.6 x stock, cached <= 0.05 x stock.
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


def trained_run(name: str, runs: Path, work: Path) -> Path:
    if (runs / name / "model.keras").exists():
        return runs / name
    from trigger_ml.config import load_card
    from trigger_ml.data import simulate_dataset
    from trigger_ml.train.fit import train

    card = load_card(ROOT / "models" / f"{name}.yaml").with_overrides(training={"epochs": 5})
    print(f"{name}: no trained run in {runs}; training the default card for 5 epochs on 50,000 windows")
    train(card, simulate_dataset(50_000, seed=1), work / "runs" / name)
    return work / "runs" / name


def _stock(model, strategy: str, out: Path) -> float:
    import contextlib
    import io

    import hls4ml

    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend="Vitis")
        if strategy != "latency":
            cfg["Model"]["Strategy"] = strategy
        hm = hls4ml.converters.convert_from_keras_model(model, hls_config=cfg, output_dir=str(out), backend="Vitis")
        hm.compile()
    return time.perf_counter() - t


def _ours(run: Path, out: Path, **opts) -> tuple[float, bool]:
    from trigger_ml.compile import Options, compile_run

    t = time.perf_counter()
    res = compile_run(run, out, Options(**opts))
    return time.perf_counter() - t, res.cached


def _clear(cache: Path, keep_pch: bool) -> None:
    for sub in ("firmware", "lib") + (() if keep_pch else ("pch",)):
        shutil.rmtree(cache / sub, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="eg_mlp,eg_cnn")
    ap.add_argument("--strategies", default="latency", help="comma list: latency,distributed_arithmetic")
    ap.add_argument("--runs", type=Path, default=Path("runs"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-compile-"))
    cache = work / "cache"
    os.environ["TRIGGER_ML_CACHE"] = str(cache)
    from trigger_ml.train.fit import load_model

    rows = []
    try:
        for name in args.models.split(","):
            run = trained_run(name, args.runs, work)
            model = load_model(run / "model.keras")
            for strategy in args.strategies.split(","):
                tag = f"{name}/{strategy}"
                stock = _stock(model, strategy, work / f"stock-{name}-{strategy}")
                _clear(cache, keep_pch=False)
                first, _ = _ours(run, work / "a", strategy=strategy)
                _clear(cache, keep_pch=True)
                cold, c1 = _ours(run, work / "b", strategy=strategy)
                cached, c2 = _ours(run, work / "c", strategy=strategy)
                _clear(cache, keep_pch=True)
                no_rtl, _ = _ours(run, work / "d", strategy=strategy, rtl=False)
                assert not c1 and c2
                rows.append((tag, stock, first, cold, cached, no_rtl))
                print(
                    f"{tag}: stock hls4ml {stock:.2f} s | trigger-ml first {first:.2f} s ({first / stock:.2f}x), "
                    f"cold {cold:.2f} s ({cold / stock:.2f}x), cached {cached:.3f} s ({cached / stock:.3f}x), "
                    f"cold without RTL {no_rtl:.2f} s ({no_rtl / stock:.2f}x)",
                    flush=True,
                )
        print(
            "\nmodel/strategy            stock  first   cold  cached  no-rtl   cold/stock  cached/stock  (targets 0.6, 0.05)"
        )
        for tag, stock, first, cold, cached, no_rtl in rows:
            print(
                f"{tag:24s} {stock:6.2f} {first:6.2f} {cold:6.2f} {cached:7.3f} {no_rtl:7.2f}   "
                f"{cold / stock:10.2f}  {cached / stock:12.3f}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
