"""da4ml: the model as distributed-arithmetic logic, its exact software model, and pipelined Verilog.

da4ml traces the hgq2 model into adders, shifts and muxes (a `CombLogic`), whose C++
interpreter is the bit-exact software model; `VerilogModel` pipelines it (`latency_cutoff`, in
da4ml's delay units, per stage) and writes Verilog plus a Verilator harness. The first trace in a
new environment compiles da4ml's numba functions (~2 minutes); they are cached on disk after.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.config import ModelCard
from trigger_ml.errors import UnsupportedError

COMB_FILE = "comb.json"


def trace(model, input_kif: tuple[int, int, int] | None = None):
    """The model's CombLogic; `input_kif` declares the input grid (sign, integer, fraction bits)."""
    from da4ml.converter import trace_model
    from da4ml.trace import HWConfig, comb_trace

    try:
        inp, out = trace_model(model, HWConfig(1, -1, -1), solver_options={"hard_dc": 2}, inputs_kif=input_kif)
        return comb_trace(inp, out, keep_dead_inputs=True)
    except (KeyError, AssertionError, NotImplementedError) as exc:
        raise UnsupportedError(
            f"da4ml cannot trace model {model.name!r}: {type(exc).__name__}: {exc}",
            "da4ml takes hgq2-native layers with RND/TRN rounding and WRAP overflow; compile with --no-rtl",
        ) from exc


def write_verilog(comb, card: ModelCard, out: Path):
    from da4ml.codegen import VerilogModel

    rtl = VerilogModel(comb, "model", str(out), latency_cutoff=card.firmware.latency_cutoff,
                       clock_period=card.firmware.clock_ns, clock_uncertainty=0.1, part_name=card.firmware.part)
    rtl.write()
    comb.save(out / COMB_FILE)
    return rtl


def estimate(comb, rtl) -> dict[str, Any]:
    """da4ml's own estimate: LUTs, FFs, pipeline stages and latency at the target clock."""
    pipe = getattr(rtl, "_pipe", None)
    stages = len(pipe.solutions) if pipe is not None else 1
    return {"source": "da4ml estimate", "lut": float(comb.cost), "ff": int(pipe.reg_bits) if pipe is not None else 0,
            "stages": int(stages), "comb_latency_units": [float(v) for v in np.atleast_1d(comb.latency)]}


class SoftwareModel:
    """`predict(x)` of da4ml's bit-exact C++ interpreter of the traced logic."""

    def __init__(self, comb) -> None:
        self.comb = comb

    @classmethod
    def load(cls, rtl_dir: Path) -> SoftwareModel:
        from da4ml.cmvm.types import CombLogic

        return cls(CombLogic.load(Path(rtl_dir) / COMB_FILE))

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return np.asarray(self.comb.predict(x, n_threads=1), dtype=np.float64).reshape(len(x), -1)


def metadata(rtl_dir: Path) -> dict[str, Any]:
    p = Path(rtl_dir) / "metadata.json"
    return json.loads(p.read_text()) if p.exists() else {}
