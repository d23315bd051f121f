"""Design-space scans: a grid of card changes (bits x sparsity x strategy ...) -> Pareto front.

Each point trains, compiles, verifies and reports with the same stage functions as `trigger-ml
run` (trigger_ml.pipeline), on dask.distributed workers: a LocalCluster sized to the machine by
default, or any scheduler address (a `dask scheduler` started by hand, or dask-jobqueue's
SLURMCluster/HTCondorCluster). dask is an optional extra (`pip install trigger-ml[scan]`),
imported only here.

    grid.py     the grid keys (an explicit registry of card fields) and the points, each with a content hash
    point.py    one point on a worker: stages -> result.json (a failure is recorded, never raised)
    cluster.py  the dask client and the progress of the submitted points
    results.py  the table (CSV, Markdown), the Pareto front and its plot
    driver.py   the scan: data once, skip finished points, run the rest, write the results
"""

from trigger_ml.scan.driver import ScanSpec, scan
from trigger_ml.scan.grid import GRID_KEYS, Point, parse_grid, parse_point

__all__ = ["GRID_KEYS", "Point", "ScanSpec", "parse_grid", "parse_point", "scan"]
