"""`trigger-ml scan`: the data once, the points (finished ones skipped), their results and front."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trigger_ml.errors import EXIT_SCAN_POINT, SchemaError
from trigger_ml.layout import PointDir, ScanDir
from trigger_ml.pipeline import StageOptions
from trigger_ml.scan import cluster, results
from trigger_ml.scan.grid import points
from trigger_ml.scan.point import PointJob, run_point

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanSpec:
    """What to scan; the defaults match `trigger-ml run` (200k simulated windows, full verify and synthesis)."""

    card: Path
    grid: dict[str, list[Any]]
    extra: tuple[dict[str, Any], ...] = ()
    out: Path = Path("scans")
    scheduler: str = "local"  # or a scheduler address, tcp://host:8786
    workers: int | None = None  # LocalCluster size (default: one per core, at most one per point)
    data: Path | None = None  # default: simulate `events` windows into <out>/data
    events: int = 200_000
    seed: int = 1
    options: StageOptions = StageOptions()  # verify events, fuzz, RTL, synthesis: as `run`


@dataclass
class ScanOutcome:
    results: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    physics_name: str = "physics"

    @property
    def failed(self) -> list[str]:
        return [r["id"] for r in self.results if r["status"] != "ok"]

    @property
    def exit_code(self) -> int:
        return EXIT_SCAN_POINT if self.failed else 0


def _data(spec: ScanSpec) -> Path:
    if spec.data is not None:
        if not Path(spec.data).exists():
            raise SchemaError(f"{spec.data}: no such data file", "give --data an HDF5, NPZ or ROOT file")
        return Path(spec.data).resolve()
    path = ScanDir(spec.out).data(spec.events, spec.seed).resolve()
    if not path.exists():
        from trigger_ml.data import simulate_dataset, write_h5

        log.info("simulating %s windows into %s", f"{spec.events:,}", path)
        write_h5(simulate_dataset(spec.events, seed=spec.seed), path)
    return path


def _finished(pdir: PointDir, pid: str) -> dict[str, Any] | None:
    try:
        res = json.loads(pdir.result.read_text())
    except (OSError, ValueError):
        return None
    return res if res.get("id") == pid and res.get("status") == "ok" else None


def scan(spec: ScanSpec) -> ScanOutcome:
    """Run every point not finished yet; write results.{csv,md,json} and pareto.png under spec.out."""
    from rich.markup import escape

    from trigger_ml import __version__
    from trigger_ml.atomic import atomic_file
    from trigger_ml.compile.cache import digest, file_sha256
    from trigger_ml.config import load_card
    from trigger_ml.progress import console, task

    t0 = time.perf_counter()
    base = load_card(spec.card)  # a bad card fails here, once, not once per point
    card_data = yaml.safe_load(Path(spec.card).read_text())
    data = _data(spec)
    opts = dataclasses.asdict(spec.options)
    salt = digest(
        json.dumps(card_data, sort_keys=True, default=str),
        file_sha256(data),
        json.dumps(opts, sort_keys=True),
        __version__,
    )
    pts = points(spec.grid, list(spec.extra), salt)
    out = ScanDir(spec.out.resolve())
    done = {p.id: r for p in pts if (r := _finished(out.point(p.id), p.id)) is not None}
    todo = [p for p in pts if p.id not in done]
    with atomic_file(out.spec) as tmp:
        tmp.write_text(
            json.dumps(
                {
                    "card": str(spec.card),
                    "model": base.name,
                    "data": str(data),
                    "options": opts,
                    "grid": spec.grid,
                    "extra": list(spec.extra),
                    "scheduler": spec.scheduler,
                    "points": [{"id": p.id, "params": dict(p.params)} for p in pts],
                },
                indent=1,
                default=str,
            )
        )
    for p in pts:
        if p.id in done:
            log.info("point %s (%s): finished before, skipped", p.id, p.label)
    n_workers = cluster.local_workers(len(todo), spec.workers) if spec.scheduler == "local" else 0
    threads = max(1, (os.cpu_count() or 1) // n_workers) if n_workers else 1
    jobs = [
        PointJob(
            id=p.id,
            params=[list(kv) for kv in p.params],
            card=card_data,
            card_name=Path(spec.card).name,
            data=str(data),
            dir=str(out.point(p.id).root),
            options=opts,
            threads=threads,
        )
        for p in todo
    ]
    new: list[dict[str, Any]] = []
    if jobs:
        where = f"LocalCluster, {n_workers} workers" if n_workers else spec.scheduler
        log.info("scan of %s: %d points to run (%d finished before) on %s", base.name, len(jobs), len(done), where)
        with cluster.client(spec.scheduler, n_workers) as c, task(f"scan {base.name}", len(jobs)) as advance:

            def on_result(res: dict[str, Any]) -> None:
                advance(1)
                label = " ".join(f"{k}={v}" for k, v in res["params"].items())
                if res["status"] == "ok":
                    log.info("point %s (%s): done in %.0f s", res["id"], label, sum(res["seconds"].values()))
                else:
                    e = res["error"]
                    console.print(
                        f"[bold red]point {res['id']} ({escape(label)}) failed[/] in {e['stage']}: "
                        f"{escape(e['message'])}",
                        highlight=False,
                        soft_wrap=True,
                    )

            new = cluster.run_all(c, run_point, jobs, _lost, on_result)
    by_id = {**done, **{r["id"]: r for r in new}}
    ordered = [by_id[p.id] for p in pts]
    rows = results.table(ordered)
    name = next((results.physics_of(r)[0] for r in ordered if r.get("physics")), "physics")
    title = f"scan of {base.name}"
    results.write_csv(rows, out.results_csv)
    with atomic_file(out.results_md) as tmp:
        tmp.write_text(results.markdown(rows, name, title))
    with atomic_file(out.results_json) as tmp:
        tmp.write_text(json.dumps({"physics": name, "rows": rows, "points": ordered}, indent=1, default=str))
    if not results.plot(rows, name, title, out.pareto):
        out.pareto.unlink(missing_ok=True)
    return ScanOutcome(ordered, rows, [j["id"] for j in jobs], list(done), time.perf_counter() - t0, name)


def _lost(job: PointJob, exc: BaseException) -> dict[str, Any]:
    """A point whose worker died (killed, out of memory): recorded like any failure."""
    from trigger_ml.atomic import atomic_file

    res = {
        "id": job["id"],
        "params": dict(job["params"]),
        "status": "failed",
        "seconds": {},
        "error": {
            "stage": "worker",
            "type": type(exc).__name__,
            "message": str(exc),
            "fix": "see the worker's log; a worker killed for memory needs a bigger memory limit",
        },
    }
    with atomic_file(PointDir(job["dir"]).result) as tmp:
        tmp.write_text(json.dumps(res, indent=1, default=str))
    return res
