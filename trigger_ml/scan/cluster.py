"""The dask client for a scan, and the progress of its points as they finish.

`local` starts a LocalCluster sized to the machine (one single-threaded worker process per
core, at most one per point); any other value is a scheduler address (`tcp://host:8786`): a
`dask scheduler` started by hand with `dask worker <address> --nthreads 1` workers, or a
dask-jobqueue cluster's `scheduler_address`. Workers run one point at a time per thread, so give
them one thread each (a point's TensorFlow, C simulation and yosys use the worker's cores).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from trigger_ml.errors import TriggerMLError

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 20


def _dask():
    try:
        from dask import distributed
    except ImportError as exc:
        raise TriggerMLError(
            "trigger-ml scan needs dask.distributed, which is not installed", "pip install 'trigger-ml[scan]'"
        ) from exc
    return distributed


def local_workers(n_points: int, workers: int | None) -> int:
    if workers is not None and workers < 1:
        raise TriggerMLError(f"--workers {workers}: need at least one worker")
    return workers or max(1, min(n_points, os.cpu_count() or 1))


@contextlib.contextmanager
def client(scheduler: str, n_workers: int) -> Iterator[Any]:
    """A connected dask Client (and its LocalCluster when `scheduler` is "local")."""
    distributed = _dask()
    if not log.isEnabledFor(logging.DEBUG):  # dask's own records are for --verbose; a point's failure is ours to report
        logging.getLogger("distributed").setLevel(logging.WARNING)
        logging.getLogger("distributed.nanny").setLevel(logging.ERROR)  # "still alive after 4 s, killing" at close
    if scheduler == "local":
        with (
            distributed.LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as c,
        ):
            yield c
        return
    try:
        c = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise TriggerMLError(
            f"cannot reach the dask scheduler at {scheduler}: {exc}",
            "start one with `dask scheduler` and workers with `dask worker <address> --nthreads 1`, "
            "or scan on this machine with --scheduler local",
        ) from exc
    with c:
        if not c.scheduler_info().get("workers"):
            log.info("scheduler %s has no workers yet: points wait until one connects", scheduler)
        yield c


def run_all(
    c,
    fn: Callable[[dict[str, Any]], dict[str, Any]],
    jobs: list[dict[str, Any]],
    failed: Callable[[dict[str, Any], BaseException], dict[str, Any]],
    on_result: Callable[[dict[str, Any]], None],
) -> list[dict[str, Any]]:
    """Submit every job, call `on_result` as each finishes (a lost worker becomes a failed result)."""
    distributed = _dask()
    futures = {c.submit(fn, job, key=f"point-{job['id']}", pure=False): job for job in jobs}
    out = []
    for fut in distributed.as_completed(futures):
        try:
            res = fut.result()
        except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: the point failed, the scan goes on
            res = failed(futures[fut], exc)
        out.append(res)
        on_result(res)
    return out
