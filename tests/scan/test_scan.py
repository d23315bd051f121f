"""A scan on dask: a 2x2 grid of a tiny eg_mlp on a LocalCluster with two workers and one point
killed on purpose, a re-run that skips the finished points, and the same scan through a
separately started `dask scheduler` + `dask worker` on loopback (the way a cluster is used)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trigger_ml.cli import main

from ..conftest import ROOT

pytestmark = pytest.mark.slow
TINY = [
    "--grid",
    "epochs=1",
    "--grid",
    "training.batch_size=512",
    "--events",
    "3000",
    "--verify-events",
    "300",
    "--fuzz",
    "20",
    "--no-synth",
]


def _scan(*args: str) -> int:
    try:
        main(["scan", str(ROOT / "models" / "eg_mlp.yaml"), *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def local_scan(tmp_path_factory):
    out = tmp_path_factory.mktemp("scan") / "eg_mlp"
    t = time.perf_counter()
    code = _scan(
        "--grid",
        "bits=3,4",
        "--grid",
        "strategy=latency,da",
        "--point",
        "bits=3,strategy=bogus",
        "--workers",
        "2",
        "--out",
        str(out),
        *TINY,
    )
    return out, code, time.perf_counter() - t


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())["rows"]


def test_local_cluster_runs_the_grid_and_records_the_killed_point(local_scan):
    out, code, _ = local_scan
    assert code == 4  # a point failed: the scan says so (its own exit code), after finishing the others
    rows = _rows(out)
    assert [" ".join(r["params"].split()[:2]) for r in rows] == [
        "bits=3 strategy=latency",
        "bits=3 strategy=da",
        "bits=4 strategy=latency",
        "bits=4 strategy=da",
        "bits=3 strategy=bogus",
    ]
    ok, bad = rows[:4], rows[4]
    for r in ok:
        assert r["status"] == "ok", r["error"]
        matched, compared = map(int, r["exact"].split("/"))
        assert compared > 0 and matched == compared  # csim, da4ml and RTL, every point
        assert 0 < r["physics"] <= 1 and r["lut"] > 0 and r["latency_ns"] > 0 and r["lut_source"]
    assert any(r["pareto"] for r in ok)
    assert bad["status"] == "failed" and "bogus" in bad["error"] and bad["error"].startswith("card:")
    point_dirs = {p.name: json.loads((p / "result.json").read_text()) for p in (out / "points").iterdir()}
    assert len(point_dirs) == 5
    workers = {r["worker"] for r in point_dirs.values() if "worker" in r}
    assert workers  # ran on dask workers, recorded
    csv = (out / "results.csv").read_text().splitlines()
    assert csv[0].startswith("id,params,status,physics") and len(csv) == 6
    assert (out / "pareto.png").stat().st_size > 10_000 and "bogus" in (out / "results.md").read_text()


def test_a_rerun_skips_the_finished_points(local_scan):
    out, _, first_s = local_scan
    before = {p.name: (p / "result.json").stat().st_mtime_ns for p in (out / "points").iterdir()}
    t = time.perf_counter()
    code = _scan(
        "--grid",
        "bits=3,4",
        "--grid",
        "strategy=latency,da",
        "--point",
        "bits=3,strategy=bogus",
        "--workers",
        "2",
        "--out",
        str(out),
        *TINY,
    )
    assert code == 4
    after = {p.name: (p / "result.json").stat().st_mtime_ns for p in (out / "points").iterdir()}
    rows = {r["id"]: r for r in _rows(out)}
    for pid, r in rows.items():
        if r["status"] == "ok":
            assert after[pid] == before[pid]  # not run again
        else:
            assert after[pid] > before[pid]  # a failed point is tried again
    assert time.perf_counter() - t < first_s / 2


def _dask_cli() -> str:
    exe = Path(sys.executable).parent / "dask"
    assert exe.exists(), "dask's command line comes with trigger-ml[scan]"
    return str(exe)


@pytest.fixture
def loopback_cluster(tmp_path):
    """`dask scheduler` and one `dask worker`, as separate processes on 127.0.0.1."""
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [
                _dask_cli(),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(
            subprocess.Popen(
                [
                    _dask_cli(),
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "1",
                    "--no-dashboard",
                    "--local-directory",
                    str(tmp_path / "worker"),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_scan_on_a_separately_started_scheduler_and_worker(loopback_cluster, tmp_path):
    assert loopback_cluster.startswith("tcp://127.0.0.1:")
    out = tmp_path / "remote"
    code = _scan("--grid", "bits=3", "--scheduler", loopback_cluster, "--out", str(out), *TINY)
    assert code == 0
    (row,) = _rows(out)
    assert row["status"] == "ok" and row["exact"].split("/")[0] == row["exact"].split("/")[1]
    res = json.loads((out / "points" / row["id"] / "result.json").read_text())
    assert res["worker"] and res["seconds"]["compile"] > 0


def test_an_unreachable_scheduler_is_one_clear_error(tmp_path, capsys, monkeypatch):
    from trigger_ml.scan import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2)
    code = _scan("--grid", "bits=3", "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "x"), *TINY)
    assert code == 3
    err = capsys.readouterr().err
    assert "cannot reach the dask scheduler" in err and "dask scheduler" in err
