"""Every peer model (shared/peer-models) through trigger-ml and through stock hls4ml 1.3: one run,
one table.

    python tools/bench_peers.py PEER_DIR [--only a,b] [--no-stock] [--no-trigger-ml] [--synth]
                                [--granularity name|model] [--timeout S] [--jobs N] [--keep DIR]
                                [--json FILE]

trigger-ml, per model: `import_model` (the file, and --weights for Keras json), `compile_run`,
`verify_firmware` (every level exact against the golden model, the RTL included), the C simulation
on the reference inputs against the framework's own outputs (exact for the fixed-point models,
max error / output range and argmax agreement for the others: check.py's rule), and the report's
best LUT / FF / DSP / latency (`--synth`: yosys synthesis of the RTL). Stock hls4ml: the flow of
tools/stock_hls4ml.py (default precision fixed<16,6>, io_parallel, Vitis C simulation), matched
against the same reference. Each half of each model runs in its own process with a timeout, and a
failure (an unsupported layer, a mismatch, a timeout) is recorded in its row, not raised: the table
always has every model. Wall times are seconds on this machine (shared: read them as such).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
EXACT = {"qk_po2_relu", "hgq_mnist_homogeneous", "TFC_1W2A_int"}  # fixed point end to end (check.py)


def _files(entry: dict, peer: Path) -> tuple[Path, Path | None]:
    main = next(peer / f for f in entry["files"] if f.endswith((".onnx", ".json", ".h5", ".keras")))
    weights = next((peer / f for f in entry["files"] if f.endswith("_weights.h5")), None)
    return main, weights if main.suffix == ".json" else None


def trigger_ml_half(entry: dict, peer: Path, work: Path, synth: bool, progress: Path | None = None) -> dict:
    """import -> compile -> verify -> C simulation vs reference -> report figures; the step that
    failed and its error, with the figures of the steps before it. `progress`: the figures so far are
    written there before each step (what a timeout leaves)."""
    import numpy as np
    from stock_hls4ml import compare

    res: dict = {"status": "ok"}
    step = "import"
    try:
        from trigger_ml.compile import Options, compile_run
        from trigger_ml.interop import import_model
        from trigger_ml.report.build import build
        from trigger_ml.verify import levels
        from trigger_ml.verify.run import verify_firmware

        main, weights = _files(entry, peer)
        run, fw = work / "run", work / "fw"
        t = time.perf_counter()
        import_model(main, run, weights=weights)
        res["t_import"] = time.perf_counter() - t
        step = "compile"
        _save(progress, res, step)
        t = time.perf_counter()
        compile_run(run, fw, Options())
        res["t_compile"] = time.perf_counter() - t
        step = "verify"
        _save(progress, res, step)
        t = time.perf_counter()
        out = verify_firmware(fw, None, n_fuzz=1000, rtl=True)
        res["t_verify"] = time.perf_counter() - t
        res["levels"] = {r.level: [r.compared - r.mismatched, r.compared] for r in out.exact}
        res["levels_exact"] = all(r.ok for r in out.exact)
        step = "reference"
        _save(progress, res, step)
        ref = np.load(peer / entry["reference"])
        res.update(compare(levels.csim(fw).predict(ref["x"]), ref["y"]))
        step = "report"
        _save(progress, res, step)
        t = time.perf_counter()
        rep = build(fw, synth=synth)
        res["t_report"] = time.perf_counter() - t
        res["figures"] = {k: [v["value"], v["source"]] for k, v in rep["figures"].items()}
        res["synth_skipped"] = rep.get("synth_skipped")
    except Exception as exc:  # noqa: BLE001 - record, do not stop the benchmark
        res["status"] = f"fail:{step}"
        res["error"] = " ".join(traceback.format_exception_only(type(exc), exc)[-1].split())[:300]
    return res


def _save(path: Path | None, res: dict, step: str) -> None:
    if path is not None:
        path.write_text(json.dumps(res | {"step": step}, default=str))


def stock_half(entry: dict, peer: Path, work: Path, granularity: str) -> dict:
    from stock_hls4ml import run_peer

    return run_peer(entry, peer, work, granularity=granularity)


def _child(half: str, entry: dict, args, work: Path) -> dict:
    """One half of one model in its own process (a hang or a crash is one failed row)."""
    work.mkdir(parents=True, exist_ok=True)
    result = work / f"{half}.json"
    cmd = [
        sys.executable,
        __file__,
        str(args.peer_dir),
        "--worker",
        half,
        "--only",
        entry["name"],
        "--json",
        str(result),
    ]
    cmd += ["--granularity", args.granularity] + (["--synth"] if args.synth else []) + ["--keep", str(work)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and what it runs (yosys, g++)
        proc.communicate()
        part = result.with_suffix(".part")
        res = json.loads(part.read_text()) if part.exists() else {}  # the figures of the finished steps
        where = f" in {res.pop('step')}" if "step" in res else ""
        return res | {
            "status": f"fail:timeout{where}",
            "error": f"more than {args.timeout:.0f} s",
            "t_wall": time.perf_counter() - t,
        }
    if proc.returncode != 0 or not result.exists():
        tail = (err or out).strip().splitlines()[-1:] or ["no output"]  # the exception's line
        return {"status": f"fail:exit {proc.returncode}", "error": tail[0][:300]}
    return json.loads(result.read_text()) | {"t_wall": time.perf_counter() - t}


def _match(r: dict, exact: bool) -> str:
    if "max_err_over_range" not in r:
        return "-"
    if exact:
        return f"exact {r['exact_elements']:.4f} (rows {r['exact_rows']:.3f})"
    return f"err/range {r['max_err_over_range']:.4f}, argmax {r['argmax_agree']:.3f}"


def _levels(lv: dict) -> str:
    """`csim, da4ml, rtl 1,009/1,009` (or each level's own count where they differ)."""
    counts = {tuple(v) for v in lv.values()}
    if len(counts) == 1:
        ((good, n),) = counts
        return f"{', '.join(lv)} {good:,}/{n:,}"
    return ", ".join(f"{k} {g:,}/{n:,}" for k, (g, n) in lv.items())


def _cell(r: dict | None, key: str, fmt: str = "{:.1f}") -> str:
    return "-" if r is None or key not in r else fmt.format(r[key])


def table(rows: list[dict]) -> str:
    from stock_hls4ml import markdown_table

    head = [
        "model",
        "trigger-ml import / compile / verify / report s",
        "levels exact",
        "trigger-ml vs reference",
        "LUT / FF / DSP",
        "latency",
        "stock hls4ml vs reference",
        "stock convert / compile s",
    ]
    body = []
    for row in rows:
        t, s, exact = row.get("trigger_ml"), row.get("stock"), row["name"] in EXACT
        cells = [row["name"]]
        if t is None:
            cells += ["not run"] * 5
        else:
            times = " / ".join(_cell(t, k) for k in ("t_import", "t_compile", "t_verify", "t_report"))
            cells.append(times if t["status"] == "ok" else f"{times} ({t['status']}: {t.get('error', '')[:80]})")
            lv = t.get("levels")
            cells.append("-" if lv is None else ("yes" if t.get("levels_exact") else "NO") + f" ({_levels(lv)})")
            cells.append(_match(t, exact))
            f = t.get("figures", {})
            res = " / ".join(f"{f[k][0]:,.0f}" if k in f else "-" for k in ("lut", "ff", "dsp"))
            src = f.get("lut", [0, ""])[1].split(" (")[0]  # "yosys synthesis", "da4ml estimate", ...
            if t.get("synth_skipped"):  # the report's size cap: say so in the row, not only in the log
                src += (
                    f"; yosys not run: {t['synth_skipped'].split(' (')[0].split(', ')[-1]}"  # "above the ... cap of N"
                )
            cells.append(f"{res} ({src})" if src else res)
            lat = f.get("latency_ns")
            cells.append("-" if lat is None else f"{f.get('latency_cycles', ['?'])[0]:.0f} cyc, {lat[0]:.1f} ns")
        if s is None:
            cells += ["not run", "-"]
        else:
            cells.append(_match(s, exact) if s["status"] == "ok" else f"{s['status']}: {s.get('error', '')[:120]}")
            cells.append(" / ".join(_cell(s, k) for k in ("t_convert", "t_compile")))
        body.append(cells)
    return markdown_table(head, body)


def _cost(entry: dict, peer: Path) -> int:
    """Bytes of the model's files: the largest models go first, so the longest jobs start early."""
    return sum((peer / f).stat().st_size for f in entry["files"] if (peer / f).exists())


def _schedule(tasks: list[tuple[dict, str]], jobs: int, run, done) -> None:
    """Run `run(entry, half)` for every task, `jobs` at a time, in order, never two halves of one
    model at once (each may take several GB and both cores); `done(entry, half, result)` after each."""
    lock = threading.Condition()
    busy: set[str] = set()
    todo = list(tasks)

    def worker() -> None:
        while True:
            with lock:
                while todo and all(e["name"] in busy for e, _ in todo):
                    lock.wait()
                if not todo:
                    return
                entry, half = next(t for t in todo if t[0]["name"] not in busy)
                todo.remove((entry, half))
                busy.add(entry["name"])
            try:
                res = run(entry, half)
            except Exception as exc:  # noqa: BLE001 - one failed row, the other tasks go on
                res = {"status": "fail:bench", "error": f"{type(exc).__name__}: {exc}"[:300]}
            finally:
                with lock:
                    busy.discard(entry["name"])
                    lock.notify_all()
            with lock:
                done(entry, half, res)

    threads = [threading.Thread(target=worker) for _ in range(max(1, jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("peer_dir", type=Path)
    ap.add_argument("--only")
    ap.add_argument("--no-stock", action="store_true")
    ap.add_argument("--no-trigger-ml", action="store_true")
    ap.add_argument("--synth", action="store_true", help="yosys synthesis of the RTL for the resource figures")
    ap.add_argument("--granularity", default="name", help="stock hls4ml's config granularity (name or model)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per half per model")
    ap.add_argument(
        "--jobs", type=int, default=1, help="model halves run at the same time (wall times then share the cores)"
    )
    ap.add_argument("--keep", type=Path, help="work here and keep the outputs")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--worker", choices=("trigger_ml", "stock"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    man = json.loads((args.peer_dir / "manifest.json").read_text())
    only = set(args.only.split(",")) if args.only else None
    entries = [e for e in man if not only or e["name"] in only]
    work = args.keep or Path(tempfile.mkdtemp(prefix="tml-bench-peers-"))
    if args.worker:  # one half of one model, in this process
        (entry,) = entries
        if args.worker == "trigger_ml":
            os.environ.setdefault("TRIGGER_ML_CACHE", str(work / "cache"))
            res = trigger_ml_half(entry, args.peer_dir, work / "trigger_ml", args.synth, args.json.with_suffix(".part"))
        else:
            res = stock_half(entry, args.peer_dir, work / "stock", args.granularity)
        args.json.write_text(json.dumps(res, indent=1, default=str))
        return
    halves = [h for h, off in (("trigger_ml", args.no_trigger_ml), ("stock", args.no_stock)) if not off]
    rows = {e["name"]: {"name": e["name"]} for e in entries}
    tasks = [(e, h) for e in sorted(entries, key=lambda e: -_cost(e, args.peer_dir)) for h in halves]

    def done(entry: dict, half: str, res: dict) -> None:
        rows[entry["name"]][half] = res
        print(json.dumps({"name": entry["name"], half: res}, default=str)[:400], flush=True)
        if args.json:
            args.json.write_text(json.dumps(list(rows.values()), indent=1, default=str))

    _schedule(tasks, args.jobs, lambda e, h: _child(h, e, args, work / e["name"]), done)
    rows = list(rows.values())  # manifest order
    print()
    print(table(rows))
    print(f"(outputs in {work})")


if __name__ == "__main__":
    main()
