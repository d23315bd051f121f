"""A new user's first `trigger-ml run`: a fresh virtual environment, empty caches, the README's first
command, wall time per stage.

    python tools/bench_first_run.py [--keep DIR] [--models eg_mlp,eg_cnn,ad_autoencoder] [--reuse-venv VENV]

Makes DIR/venv with `python3 -m venv` and installs this checkout with pip (timed apart: the
README's command includes it, a user pays it once), points every cache at empty folders under DIR
(HOME, XDG_CACHE_HOME for yowasp's compiled WebAssembly, TRIGGER_ML_CACHE; numba's cache lives
in the fresh venv's __pycache__), runs `trigger-ml run` in DIR/work and prints the wall time of
each stage from runs/summary.json, the one-time costs inside them, and the total against the
README's figure. `--reuse-venv` skips the install (its numba cache must be empty for a true first
run: the script says whether it was).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _venv(dest: Path) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(dest)], check=True)
    pip = [str(dest / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, str(ROOT)], check=True)
    return time.perf_counter() - t


def _numba_cached(venv: Path) -> int:
    return sum(1 for _ in venv.rglob("da4ml/**/__pycache__/*.nbi"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=Path, help="work folder (default: a new temporary folder)")
    ap.add_argument("--models", default="eg_mlp,eg_cnn,ad_autoencoder")
    ap.add_argument("--reuse-venv", type=Path, help="an existing venv with trigger-ml installed (skips pip)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="first-run-"))
    work.mkdir(parents=True, exist_ok=True)
    venv = args.reuse_venv or work / "venv"
    install_s = None if args.reuse_venv else _venv(venv)
    home = work / "home"
    for sub in ("cache", "trigger-ml-cache"):
        shutil.rmtree(home / sub, ignore_errors=True)
        (home / sub).mkdir(parents=True)
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / "cache"),
        "TRIGGER_ML_CACHE": str(home / "trigger-ml-cache"),
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
    }
    env.pop("VIRTUAL_ENV", None)
    cold_numba = _numba_cached(venv) == 0
    run_dir = work / "work"
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(ROOT / "models", run_dir / "models")
    t = time.perf_counter()
    r = subprocess.run([str(venv / "bin" / "trigger-ml"), "run", "--models", args.models], cwd=run_dir, env=env)
    total = time.perf_counter() - t
    summary = json.loads((run_dir / "runs" / "summary.json").read_text())
    print(
        f"\nfirst run in {work} (exit code {r.returncode}; numba cache {'empty' if cold_numba else 'NOT empty'}, "
        f"yowasp and trigger-ml caches empty)"
    )
    if install_s is not None:
        print(f"{'pip install (fresh venv)':<28}{install_s:>10.1f} s")
    per_kind: dict[str, float] = {}
    for stage, s in summary["timings_s"].items():
        print(f"{stage:<28}{s:>10.1f} s")
        per_kind[stage.split(":")[0]] = per_kind.get(stage.split(":")[0], 0.0) + s
    print("by stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in per_kind.items()))
    print(f"{'trigger-ml run, wall':<28}{total:>10.1f} s = {total / 60:.1f} min (target: 10 min on 2 cores)")


if __name__ == "__main__":
    main()
