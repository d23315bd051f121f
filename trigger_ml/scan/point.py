"""One scan point, run on a dask worker: its card through the model stages of `pipeline.STAGES`
(train, compile, verify, report), then result.json.

Everything a worker needs travels in a plain dict of strings and numbers (`PointJob`), so any
worker that has trigger-ml installed and sees the same file system (the scan directory and the
data file) can run it. A failure is recorded in the result (stage, error, fix; the traceback in
`error.txt`) and returned, never raised: the other points go on.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from pathlib import Path
from typing import Any, TypedDict


class PointJob(TypedDict):
    id: str
    params: list[list[Any]]  # [[key, value], ...] as given on the command line
    card: dict[str, Any]  # the card's YAML content, before the point's overrides
    card_name: str
    data: str  # data file (HDF5/NPZ/ROOT), visible to the worker
    dir: str  # this point's directory
    options: dict[str, Any]  # pipeline.StageOptions as a dict
    threads: int


def point_card(job: PointJob):
    """The point's card: the scanned fields replaced, then validated like a card file."""
    from trigger_ml.config import card_from_dict
    from trigger_ml.scan.grid import Point

    data = json.loads(json.dumps(job["card"]))
    for sec, values in Point(tuple((k, v) for k, v in job["params"]), job["id"]).overrides().items():
        if not isinstance(data.get(sec, {}), dict):
            data[sec] = {}
        data.setdefault(sec, {}).update(values)
    return card_from_dict(data, f"{job['card_name']} ({' '.join(f'{k}={v}' for k, v in job['params'])})")


def run_point(job: PointJob) -> dict[str, Any]:
    """Run every stage of one point; returns (and writes) its result, status "ok" or "failed"."""
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, str(job["threads"]))
    os.environ["TRIGGER_ML_THREADS"] = str(job["threads"])  # C simulation, da4ml model, yosys: the worker's share
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from trigger_ml import pipeline as P
    from trigger_ml.atomic import atomic_file
    from trigger_ml.layout import PointDir
    from trigger_ml.progress import console

    console.quiet = True  # many workers share a terminal: the scan's own bar reports progress
    logging.getLogger("trigger_ml").setLevel(logging.WARNING)
    for noisy in ("tensorflow", "absl", "h5py", "numba"):  # as progress.setup_logging does for `run`
        logging.getLogger(noisy).setLevel(logging.ERROR)
    pdir = PointDir(job["dir"])
    pdir.root.mkdir(parents=True, exist_ok=True)
    run_dir, fw_dir = pdir.run, pdir.firmware
    result: dict[str, Any] = {
        "id": job["id"],
        "params": dict(job["params"]),
        "status": "running",
        "worker": os.uname().nodename,
        "seconds": {},
    }
    stage = "card"
    t = time.perf_counter()

    def done(name: str) -> None:
        nonlocal t
        result["seconds"][name] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()

    try:
        from trigger_ml.compile.hls import check_strategy

        card = point_card(job)
        check_strategy(card.firmware.strategy)
        result["card"] = {
            "weight_bits": card.quantization.weight_bits,
            "sparsity": card.pruning.default,
            "strategy": card.firmware.strategy,
            "reuse_factor": card.firmware.reuse_factor,
            "clock_ns": card.firmware.clock_ns,
        }
        stage = "data"
        pjob = P.Job(
            card,
            Path(job["data"]),
            run_dir,
            fw_dir,
            P.StageOptions(**job["options"]),
        )
        pjob.dataset()
        done("data")
        for st in P.model_stages():
            stage = st.name
            st.run(pjob)
            done(st.name)
        result.update(status="ok", **P.summary_row(run_dir, fw_dir))
    except Exception as exc:  # noqa: BLE001 - a point's failure is data for the scan, not a crash
        from trigger_ml.errors import TriggerMLError

        what = exc.what if isinstance(exc, TriggerMLError) else str(exc)
        fix = exc.fix if isinstance(exc, TriggerMLError) else None
        result.update(status="failed", error={"stage": stage, "type": type(exc).__name__, "message": what, "fix": fix})
        with atomic_file(pdir.error) as tmp:
            tmp.write_text(traceback.format_exc())
    with atomic_file(pdir.result) as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=str))
    return result
