"""Predictions shipped with a model file, checked at import.

An .npz with `x` (inputs, batch first, in the model file's own layout, e.g. NCHW for a PyTorch
ONNX file) and `y` (the outputs of the model's own framework on `x`, batch first): given to
`trigger-ml import` with `--predictions FILE`, or found beside the model file as
`<stem>.predictions.npz` (`model.json` -> `model.predictions.npz`). The peer models'
`<name>.reference.npz` have this layout.

The imported model (model.keras, evaluated in float64 as verify evaluates it) runs on `x`:
- an exact import (fixed point end to end) must reproduce `y` bit for bit, else `MismatchError`
  (exit 1) naming the file and the first differing event; nothing is written;
- a fidelity import (float operations approximated) is measured against the import's tolerances
  (max error / output range, argmax agreement), with a warning when outside them.
The file is read with `allow_pickle=False`; an object array, a missing array, a size beyond the
memory budget or a shape the model does not take is one error (exit 3) naming the file.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.atomic import atomic_dir, scratch_dir
from trigger_ml.data.io import check_size, npz_shapes, open_npz
from trigger_ml.errors import MismatchError, SchemaError
from trigger_ml.interop.reference import fidelity
from trigger_ml.layout import RunDir

log = logging.getLogger(__name__)
SUFFIX = ".predictions.npz"
FIX = "ship an .npz of numpy arrays x (inputs, batch first) and y (the framework's outputs on x)"


def companion(src: Path) -> Path | None:
    """`<stem>.predictions.npz` beside the model file, when there is one."""
    p = Path(src).with_name(Path(src).stem + SUFFIX)
    return p if p.is_file() else None


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """`x` and `y` of a predictions file as float64, checked before anything is imported."""
    path = Path(path)
    with open_npz(path, FIX, "the --predictions path") as z:
        shapes = npz_shapes(z, path)
        if "x" not in shapes or "y" not in shapes:
            raise SchemaError(f"{path}: needs arrays 'x' and 'y', has {sorted(shapes)}", FIX)
        sx, sy = shapes["x"], shapes["y"]
        if not sx or not sy or sx[0] != sy[0] or sx[0] == 0:
            raise SchemaError(f"{path}: x has shape {sx} and y {sy}: not one row per event in both", FIX)
        per_event = 8 * (int(np.prod(sx[1:], dtype=np.int64)) + int(np.prod(sy[1:], dtype=np.int64))) * 4
        check_size(int(sx[0]), per_event, str(path))
        try:
            x, y = np.asarray(z["x"], np.float64), np.asarray(z["y"], np.float64)
        except (OSError, ValueError, TypeError, EOFError) as exc:
            raise SchemaError(f"{path}: x or y is not a numeric array ({exc})", FIX) from exc
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise SchemaError(f"{path}: x or y holds NaN or infinity", FIX)
    return x, y


def check(run_dir: Path, summary: dict[str, Any], path: Path, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The imported run in `run_dir` on the shipped `x` against the shipped `y` (see the module
    docstring); returns the summary's `predictions` entry."""
    run = RunDir(run_dir)
    entry: dict[str, Any] = {"file": str(path), "events": int(len(x))}
    if not run.model.exists():  # hls4ml's own converter: no model to run before compile
        log.warning("%s: not checked at import (hls4ml's converter path; verify measures the firmware)", path)
        return {**entry, "checked": False, "reason": "hls4ml's own converter: measured by verify, not at import"}
    layout = summary["input_layout"]
    user = tuple(layout.get("user_shape") or layout["shape"])
    if tuple(x.shape[1:]) != user and int(np.prod(x.shape[1:])) == int(np.prod(user)) and x.ndim == 2:
        x = x.reshape(len(x), *user)  # flattened inputs of a model with one input axis per feature
    if tuple(x.shape[1:]) != user:
        raise SchemaError(
            f"{path}: x has events of shape {tuple(x.shape[1:])}, the model takes {user}",
            "give x batch first, shaped as the model file's input",
        )
    perm = layout.get("perm")
    xm = np.transpose(x, (0, *[p + 1 for p in perm])) if perm else x  # the user's layout -> channels-last
    from trigger_ml.train.golden import QuantizedModel  # keras, only once the shipped file is valid

    got = QuantizedModel.load(run.model).predict(xm)
    want = y.reshape(len(y), -1)
    if got.shape != want.shape:
        raise SchemaError(f"{path}: y has {want.shape[1]} outputs per event, the model gives {got.shape[1]}", FIX)
    if summary.get("check") == "exact":
        bad = np.flatnonzero(np.any(got != want, axis=1))
        if len(bad):
            i = int(bad[0])
            raise MismatchError(
                f"{path}: the imported model differs from the shipped predictions on {len(bad)}/{len(want)} "
                f"events; first event {i}: expected {want[i].tolist()}, got {got[i].tolist()}",
                "check that the file's quantizers are the ones its predictions were made with, or report the model",
            )
        return {**entry, "check": "exact", "mismatched": 0}
    tol = summary["tolerance"]
    fig = fidelity(got, want)
    ok = fig["max_rel_error"] <= tol["max_rel_error"] and fig["argmax_agreement"] >= tol["argmax_agreement"]
    if not ok:
        log.warning("%s: the imported model is outside the fidelity gates on the shipped predictions: %s", path, fig)
    return {**entry, "check": "fidelity", **fig, "tolerance": tol, "gates_passed": ok}


def import_checked(importer: Callable[[Path], dict[str, Any]], out: Path, path: Path) -> dict[str, Any]:
    """Run `importer(run_dir)` into a scratch folder, check the shipped predictions `path` on the
    run, and only then write the run to `out` (atomically, its metrics.json `import` naming the
    check); returns the import summary with its `predictions` entry."""
    x, y = load(path)  # a bad file fails before the import's work
    with scratch_dir() as tmp:
        run = RunDir(tmp / "run")
        summary = importer(run.root)
        summary["predictions"] = check(run.root, summary, path, x, y)
        metrics = json.loads(run.metrics.read_text())
        metrics.setdefault("import", {})["predictions"] = summary["predictions"]
        run.metrics.write_text(json.dumps(metrics, indent=1, default=str))
        with atomic_dir(out, kind=RunDir.OUTPUT) as dest:
            shutil.copytree(run.root, dest, symlinks=True, dirs_exist_ok=True)
    return summary
