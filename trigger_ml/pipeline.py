"""`trigger-ml run`: data -> train -> compile -> verify -> report for each model, resumable.

Every stage writes its outputs atomically and then records a stamp (the content hash of its
inputs) in `<runs>/stages.json`. A re-run skips a stage whose stamp matches, so an interrupted
run (Ctrl-C, a killed process) resumes where it stopped and never leaves half-written output;
a changed card or data file re-runs exactly the stages downstream of it. `--from` forces the
stages from that one on; `--to` stops after that one.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.atomic import atomic_file
from trigger_ml.compile.cache import digest, file_sha256
from trigger_ml.errors import SchemaError, TriggerMLError

log = logging.getLogger(__name__)
STAGES = ("data", "train", "compile", "verify", "report")
MODELS = ("eg_mlp", "eg_cnn", "ad_autoencoder")
STAMPS = "stages.json"
VERIFY_RESULT = "verify/result.json"


@dataclass(frozen=True)
class Plan:
    """What to run; the defaults are the README's main job."""

    models: tuple[str, ...] = MODELS
    data: Path | None = None  # the user's data file; None: simulate the default data set
    events: int = 200_000
    seed: int = 1
    fast: bool = False
    from_stage: str | None = None  # force the stages from this one on (None: only what changed)
    to_stage: str = "report"
    cards: Path = Path("models")
    runs: Path = Path("runs")
    firmware: Path = Path("firmware")
    data_dir: Path = Path("data")
    verify_events: int = 10_000
    fuzz: int = 1000
    synth: bool = True

    @property
    def fast_overrides(self) -> dict[str, Any]:
        return {"epochs": 2, "patience": 2, "batch_size": 512} if self.fast else {}

    def n_events(self) -> int:
        return min(self.events, 20_000) if self.fast else self.events

    def n_verify(self) -> int:
        return min(self.verify_events, 2000) if self.fast else self.verify_events


@dataclass
class Outcome:
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 a bit-exact mismatch; 2 a fidelity gate (verify) or the budget (report: best figures) failed."""
        codes = [r.get("verify", {}).get("exit_code", 0) for r in self.rows.values()]
        codes += [2 for r in self.rows.values() if r.get("budget_ok") is False]
        return 1 if 1 in codes else 2 if 2 in codes else 0


class _Stamps:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def done(self, name: str, key: str) -> bool:
        return self.data.get(name) == key

    def record(self, name: str, key: str) -> None:
        self.data[name] = key
        with atomic_file(self.path) as tmp:
            tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))


def _check(plan: Plan) -> None:
    for s in (plan.from_stage or "data", plan.to_stage):
        if s not in STAGES:
            raise TriggerMLError(f"unknown stage {s!r}", f"stages: {', '.join(STAGES)}")
    if STAGES.index(plan.from_stage or "data") > STAGES.index(plan.to_stage):
        raise TriggerMLError(f"--from {plan.from_stage} comes after --to {plan.to_stage}")
    for m in plan.models:
        if not (plan.cards / f"{m}.yaml").exists():
            raise SchemaError(f"no model card {plan.cards / f'{m}.yaml'}",
                              f"models: {', '.join(sorted(p.stem for p in plan.cards.glob('*.yaml')))}")
    if plan.data is not None and not Path(plan.data).exists():
        raise SchemaError(f"{plan.data}: no such data file", "give --data an HDF5, NPZ or ROOT file")


def run(plan: Plan = Plan()) -> Outcome:
    """Run the pipeline for every model of `plan`; returns the summary rows and timings."""
    from trigger_ml.progress import console

    _check(plan)
    plan.runs.mkdir(parents=True, exist_ok=True)
    stamps = _Stamps(plan.runs / STAMPS)
    out = Outcome()
    first = STAGES.index(plan.from_stage or "data")
    forced = plan.from_stage is not None
    last = STAGES.index(plan.to_stage)

    def stage(name: str, key: str, fn, what: str):
        i = STAGES.index(name.split(":")[0])
        if i > last:
            return None
        if i < first or (stamps.done(name, key) and not forced):
            out.skipped.append(name)
            log.info("%-24s reused (%s)", name, "before --from" if i < first else "unchanged")
            return None
        t = time.perf_counter()
        with console.status(f"[bold]{name}[/]: {what}"):
            res = fn()
        dt = time.perf_counter() - t
        out.timings_s[name] = dt
        stamps.record(name, key)
        log.info("%-24s done in %.1f s", name, dt)
        return res

    # data
    data_file = Path(plan.data) if plan.data is not None else plan.data_dir / ("ecal-fast.h5" if plan.fast else "ecal.h5")
    if plan.data is None:
        key = digest("data", str(plan.n_events()), str(plan.seed), _version())
        if not data_file.exists():
            stamps.data.pop("data", None)
        stage("data", key, lambda: _simulate(data_file, plan.n_events(), plan.seed), f"simulating {plan.n_events():,} windows")
    if not data_file.exists():
        raise SchemaError(f"{data_file}: missing", "run the data stage (drop --from)")
    data_key = file_sha256(data_file)
    ds = None

    def dataset():
        nonlocal ds
        if ds is None:
            from trigger_ml.data import read_dataset

            ds = read_dataset(data_file)
        return ds

    for m in plan.models:
        card_file = plan.cards / f"{m}.yaml"
        run_dir, fw_dir = plan.runs / m, plan.firmware / m
        row = out.rows.setdefault(m, {})
        t_key = digest("train", card_file.read_bytes(), data_key, json.dumps(plan.fast_overrides, sort_keys=True), _version())
        _forget_if_missing(stamps, f"train:{m}", run_dir / "model.keras")
        stage(f"train:{m}", t_key, lambda: _train(card_file, dataset(), run_dir, plan), "quantization-aware training")
        c_key = digest("compile", t_key, _version())
        _forget_if_missing(stamps, f"compile:{m}", fw_dir / "manifest.json")
        stage(f"compile:{m}", c_key, lambda: _compile(run_dir, fw_dir), "hls4ml project, emulator, da4ml RTL")
        v_key = digest("verify", c_key, data_key, str(plan.n_verify()), str(plan.fuzz), _version())
        _forget_if_missing(stamps, f"verify:{m}", fw_dir / VERIFY_RESULT)
        stage(f"verify:{m}", v_key, lambda: _verify(fw_dir, run_dir, dataset(), plan), "every level bit for bit, fidelity, budget")
        r_key = digest("report", v_key, str(plan.synth), _version())
        _forget_if_missing(stamps, f"report:{m}", fw_dir / "report" / "report.json")
        stage(f"report:{m}", r_key, lambda: _report(fw_dir, plan), "yosys synthesis, figures, plots")
        row.update(summary_row(run_dir, fw_dir))
    return out


def _version() -> str:
    from trigger_ml import __version__

    return __version__


def _forget_if_missing(stamps: _Stamps, name: str, output: Path) -> None:
    if not output.exists():
        stamps.data.pop(name, None)


def _simulate(path: Path, n: int, seed: int) -> None:
    from trigger_ml.data import simulate_dataset, write_h5

    write_h5(simulate_dataset(n, seed=seed), path)


# The stages as functions, shared by `run` and `scan` (trigger_ml.scan).


def _train(card_file: Path, ds, run_dir: Path, plan: Plan) -> None:
    from trigger_ml.config import load_card

    card = load_card(card_file)
    if plan.fast_overrides:
        card = card.with_overrides(training=plan.fast_overrides)
    train_stage(card, ds, run_dir)


def train_stage(card, ds, run_dir: Path) -> None:
    from trigger_ml.train.fit import train

    train(card, ds, run_dir)


def _compile(run_dir: Path, fw_dir: Path) -> None:
    compile_stage(run_dir, fw_dir)


def compile_stage(run_dir: Path, fw_dir: Path, rtl: bool = True) -> None:
    from trigger_ml.compile import Options, compile_run

    compile_run(run_dir, fw_dir, Options(rtl=rtl))


def _verify(fw_dir: Path, run_dir: Path, ds, plan: Plan) -> None:
    verify_stage(fw_dir, run_dir, ds, plan.n_verify(), plan.fuzz)


def verify_stage(fw_dir: Path, run_dir: Path, ds, n_verify: int, fuzz: int, rtl: bool = True) -> None:
    """Verify on the model's test windows (never trained on); the result is kept for the summary.
    The budget is judged by the report stage, which has the synthesis figures (yosys); here,
    before synthesis, only da4ml's estimate would be there."""
    from trigger_ml.verify.run import verify_firmware

    test = np.load(run_dir / "split.npz")["test"][:n_verify]
    res = verify_firmware(fw_dir, ds.subset(np.sort(test)), fuzz, rtl=rtl, check_budget=False)
    result = {
        "exit_code": res.exit_code,
        "exact": [{"level": r.level, "inputs": r.inputs, "compared": r.compared, "mismatched": r.mismatched}
                  for r in res.exact],
        "gates": [{"check": c.name, "ok": c.ok, "value": c.value, "limit": c.limit, "detail": c.detail} for c in res.gates],
        "diagnosis": res.diagnosis,
    }
    with atomic_file(fw_dir / VERIFY_RESULT) as tmp:
        tmp.write_text(json.dumps(result, indent=1))


def _report(fw_dir: Path, plan: Plan) -> None:
    report_stage(fw_dir, plan.synth)


def report_stage(fw_dir: Path, synth: bool = True) -> None:
    from trigger_ml.report.build import write

    write(fw_dir, synth=synth)


def summary_row(run_dir: Path, fw_dir: Path) -> dict[str, Any]:
    row: dict[str, Any] = {}
    metrics = run_dir / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        row["physics"] = {"quantized": m["quantized"], "float": m["float"]}
    vr = fw_dir / VERIFY_RESULT
    if vr.exists():
        row["verify"] = json.loads(vr.read_text())
    rep = fw_dir / "report" / "report.json"
    if rep.exists():
        r = json.loads(rep.read_text())
        row["figures"] = r["figures"]
        row["budget_ok"] = r["budget_ok"]
        if r.get("timing"):
            row["timing"] = {k: r["timing"].get(k) for k in ("worst_stage", "worst_stage_delay_ns", "fmax_mhz", "met",
                                                             "clock_ns", "model")}
    return row


def summary_table(out: Outcome) -> tuple[list[str], list[list[str]]]:
    """The final table: physics, exact-match counts per level, latency, resources with sources."""
    head = ["model", "physics (quantized / float)", "exact: matched/compared per level", "fidelity", "latency",
            "LUT / FF / DSP", "budget", "sources"]
    rows = []
    for name, r in out.rows.items():
        phys = ""
        if "physics" in r:
            q, f = r["physics"]["quantized"], r["physics"]["float"]
            if "auc" in q:
                phys = (f"eff {q['efficiency_at_baseline_fake_rate']:.3f} (baseline {q['baseline_efficiency']:.3f}) "
                        f"AUC {q['auc']:.4f} / {f['auc']:.4f}")
            else:
                phys = ", ".join(f"{c} AUC {v['auc']:.3f} / {f['per_class'][c]['auc']:.3f}" for c, v in q["per_class"].items())
        exact, fid = "", ""
        if "verify" in r:
            per: dict[str, list[int]] = {}
            for e in r["verify"]["exact"]:
                c = per.setdefault(e["level"], [0, 0])
                c[0] += e["compared"] - e["mismatched"]
                c[1] += e["compared"]
            exact = ", ".join(f"{lvl} {a:,}/{b:,}" for lvl, (a, b) in per.items())
            fg = [g for g in r["verify"]["gates"] if g["check"].startswith("fidelity")]
            fid = "pass" if all(g["ok"] is not False for g in fg) else "FAIL: " + "; ".join(
                g["check"].removeprefix("fidelity: ") for g in fg if g["ok"] is False)
        lat = res = src = budget = ""
        if "figures" in r:
            f = r["figures"]
            v = lambda k: f"{f[k]['value']:,.0f}" if k in f else "n/a"  # noqa: E731
            lat = f"{v('latency_ns')} ns ({v('latency_cycles')} cycles, II {v('ii')})"
            t = r.get("timing")
            if t and t.get("worst_stage_delay_ns") is not None:
                lat += (f"; est. worst stage {t['worst_stage_delay_ns']:.2f} ns, Fmax {t['fmax_mhz']:.0f} MHz, "
                        f"{'meets' if t['met'] else 'MISSES'} {t['clock_ns']:g} ns")
            res = f"{v('lut')} / {v('ff')} / {v('dsp')}"
            src = "; ".join(sorted({f[k]["source"].split(" (")[0] for k in ("lut", "ff", "dsp", "latency_cycles") if k in f}))
            budget = "pass" if r.get("budget_ok") else "FAIL"
        rows.append([name, phys, exact, fid, lat, res, budget, src])
    return head, rows
