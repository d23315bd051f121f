"""da4ml: the model as distributed-arithmetic logic, its exact software model, and pipelined Verilog.

da4ml traces the hgq2 model into adders, shifts and muxes (a `CombLogic`; round-half-to-even
quantizers through `rounding.exact_rounding`, which da4ml 0.5 lacks), whose C++
interpreter is the bit-exact software model; `VerilogModel` pipelines it (stages cut by the delay model
of trigger_ml.timing for the card's clock) and writes Verilog plus a Verilator harness. The first trace in a
new environment compiles da4ml's numba functions (~2 minutes); they are cached on disk after.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml import cores
from trigger_ml.atomic import scratch_dir
from trigger_ml.compile import cache
from trigger_ml.compile.cache import digest
from trigger_ml.compile.rounding import exact_rounding
from trigger_ml.compile.verilator import build_env
from trigger_ml.config import ModelCard
from trigger_ml.errors import ToolError, UnsupportedError
from trigger_ml.fixed import csd_digits, smallest_holding
from trigger_ml.fpga import delays_of
from trigger_ml.timing.pipeline import pipeline

MIN_EVENTS_PER_THREAD = 2048  # below this many events per thread a batch runs on one thread

COMB_FILE = "comb.json"
# da4ml's build_binder.mk builds Verilator's C++ with -O: 44.8 s for the test CNN on 2 cores;
# -O0 builds it in 7.6 s, and 20,000 events still simulate in 0.16 s (measured 2026-11-23)
RTL_MAKE = ("slow", "CFLAGS=-std=c++17 -fPIC -O0")
BINDER = "outputs as raw 32-bit words"  # how build_rtl_sim edits da4ml's binder (part of the cache key)
MAX_OUT_BITS = 53  # outputs are float64: integers of up to 53 bits are exact
CLOCK_UNCERTAINTY_NS = 0.1  # written to da4ml's timing constraints; the delay model subtracts it too


# da4ml's constant-matrix solver searches common subexpressions over every decomposition depth; its
# time grows about cubically with the kernel (+-1 kernels, 2-bit inputs, one core: 196x64 in 7.9 s,
# 392x64 in 87 s, 784x64 unfinished after 25 min and 15 GB; measured 2026-11-26). A model with a
# kernel of more entries than this gets plain adder trees (no sharing: more adders, same values).
CSE_MAX_ENTRIES = 16384
SOLVER_CSE = {"hard_dc": 2}
SOLVER_PLAIN = {"method0": "dummy", "search_all_decompose_dc": False}


def largest_kernel(model) -> int:
    """Entries of the model's largest dense/conv kernel (da4ml's constant matrix per output)."""
    sizes = [int(np.prod(layer.kernel.shape)) for layer in model.layers if getattr(layer, "kernel", None) is not None]
    return max(sizes, default=0)


# A fully parallel design (da4ml's only form) with more shift-adds than this is skipped before
# tracing: each adder is one LUT per bit, so it needs over 10 million LUTs where the largest FPGA
# (VU19P) holds 4.1 million, and da4ml's trace would run for hours (TFC_1W2A's 117,760 took 17.6 s
# and memory grows with it). KERAS_conv1d (three 40-tap convolutions over 100 positions): 16.1 million.
MAX_PARALLEL_ADDS = 1_000_000


def kernel_positions(layer) -> int:
    """How many times a dense/conv layer applies its kernel: the output positions (1 for a dense)."""
    out = tuple(int(s) for s in layer.output.shape[1:])
    return int(np.prod(out[:-1])) if len(out) > 1 else 1


def parallel_adds(model) -> int:
    """Shift-adds of the fully parallel design before sharing: the non-zero canonical-signed-digit
    digits of every dense/conv kernel, times the positions the kernel is applied at."""
    total = 0
    for layer in model.layers:
        k = getattr(layer, "qkernel", None)
        if k is None:
            continue
        k = np.asarray(k, dtype=np.float64)
        fmt = smallest_holding(k, max_frac=48)
        frac = fmt.frac if fmt is not None else 48
        total += kernel_positions(layer) * int(csd_digits(np.round(np.ldexp(k, frac)).astype(np.int64)).sum())
    return total


def solver_for(model) -> tuple[dict[str, Any], str]:
    """da4ml solver options for the model, and what they mean (for the compile notes)."""
    n = largest_kernel(model)
    if n > CSE_MAX_ENTRIES:
        return SOLVER_PLAIN, f"plain adder trees (largest kernel {n:,} entries > {CSE_MAX_ENTRIES:,})"
    return SOLVER_CSE, "common-subexpression sharing (hard_dc 2)"


def trace(model, input_kif: tuple[int, int, int] | None = None):
    """The model's CombLogic; `input_kif` declares the input grid (sign, integer, fraction bits)."""
    from da4ml.converter import trace_model
    from da4ml.trace import HWConfig, comb_trace

    options, _ = solver_for(model)
    adds = parallel_adds(model)
    if adds > MAX_PARALLEL_ADDS:
        raise UnsupportedError(
            f"model {model.name!r} needs {adds / 1e6:.1f} million shift-adds fully parallel (over"
            f" {MAX_PARALLEL_ADDS / 1e6:g} million: more LUTs than any FPGA holds); da4ml's RTL is not traced",
            "the C simulation and the import levels still verify it; for RTL, a smaller model (fewer taps,"
            " filters or positions)",
        )
    try:
        with exact_rounding():  # RND_CONV (QKeras, QONNX ROUND) as exact tie detection in the graph
            inp, out = trace_model(model, HWConfig(1, -1, -1), solver_options=dict(options), inputs_kif=input_kif)
            comb = comb_trace(inp, out, keep_dead_inputs=True)
    except (KeyError, AssertionError, NotImplementedError) as exc:
        raise UnsupportedError(
            f"da4ml cannot trace model {model.name!r}: {type(exc).__name__}: {exc}",
            "da4ml takes hgq2-native layers with RND/TRN rounding and WRAP overflow; compile with --no-rtl",
        ) from exc
    try:  # the software model's encoding: every constant and op in 64-bit words
        comb.to_binary()
    except OverflowError as exc:
        raise UnsupportedError(
            f"da4ml's software model cannot encode model {model.name!r}: a traced constant needs more than 64 bits"
            " (da4ml 0.5's interval arithmetic over this many layers)",
            "compile with --no-rtl; the C simulation and the import levels still verify it",
        ) from exc
    return comb


def write_verilog(comb, card: ModelCard, out: Path):
    """da4ml's pipelined Verilog of `comb`: stages cut by the delay model for the card's part and
    clock (`pipelining: timing`, trigger_ml.timing.pipeline) or every `latency_cutoff` adder levels."""
    from da4ml.codegen import VerilogModel

    fw = card.firmware
    plan = None
    if fw.pipelining == "timing":
        solution, plan = pipeline(comb, delays_of(fw.part), fw.clock_ns, CLOCK_UNCERTAINTY_NS)
        cutoff = -1.0
    else:
        solution, cutoff = comb, fw.latency_cutoff
    rtl = VerilogModel(
        solution,
        "model",
        str(out),
        latency_cutoff=cutoff,
        clock_period=fw.clock_ns,
        clock_uncertainty=CLOCK_UNCERTAINTY_NS,
        part_name=fw.part,
    )
    rtl.timing_plan = plan
    rtl.write()
    comb.save(out / COMB_FILE)
    return rtl


def estimate(comb, rtl) -> dict[str, Any]:
    """da4ml's own estimate: LUTs, FFs, pipeline stages and latency at the target clock, and the
    delay model's plan of the stages (`pipelining`, when the stages were cut by it)."""
    pipe = getattr(rtl, "_pipe", None)
    stages = len(pipe.solutions) if pipe is not None else 1
    est = {
        "source": "da4ml estimate",
        "lut": float(comb.cost),
        "ff": int(pipe.reg_bits) if pipe is not None else 0,
        "stages": int(stages),
        "comb_latency_units": [float(v) for v in np.atleast_1d(comb.latency)],
    }
    plan = getattr(rtl, "timing_plan", None)
    if plan is not None:
        est["pipelining"] = plan
    return est


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
        threads = max(1, min(cores(), len(x) // MIN_EVENTS_PER_THREAD))
        return np.asarray(self.comb.predict(x, n_threads=threads), dtype=np.float64).reshape(len(x), -1)


_CWD_LOCK = threading.Lock()  # the working directory is the process's: one table-reading simulation at a time


class RTLSim:
    """`predict(x)` of the Verilator simulation of da4ml's pipelined Verilog (built once, cached).

    The build is keyed by the hash of the Verilog sources, so an unchanged design is never
    rebuilt; the library lives in the cache, the firmware directory is not modified.
    """

    def __init__(self, lib: Path, comb, memfiles: Path | None = None) -> None:
        import ctypes

        from da4ml.codegen.rtl.rtl_model import get_io_kifs

        self.lib_path = Path(lib)
        # lookup tables (da4ml's QUnaryFunctionLUT / softmax tables) are read with $readmemh relative to
        # the working directory when the simulation runs, as da4ml's own predict does
        self.memfiles = memfiles if memfiles is not None and Path(memfiles).is_dir() else None
        self._lib = ctypes.CDLL(str(lib))
        self._lib.inference.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
        self.n_in, self.n_out = comb.shape
        kin, kout = get_io_kifs(comb)
        self.k_in, self.i_in, self.f_in = (int(np.max(v)) for v in kin)
        self.k_out, self.i_out, self.f_out = (int(np.max(v)) for v in kout)
        self.width = self.k_out + self.i_out + self.f_out  # da4ml's max_out_bw: every output padded to it
        self.n_words = _out_words(self.n_out, self.width)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        if x.shape[1] != self.n_in:
            raise ValueError(f"the RTL takes {self.n_in} inputs per event, got {x.shape[1]}")
        raw = np.ascontiguousarray(np.floor(np.ldexp(x, self.f_in)), dtype=np.int32)
        out = np.zeros((len(x), self.n_words), dtype=np.int32)
        if self.memfiles is None:
            self._lib.inference(raw.ctypes.data, out.ctypes.data, len(x), 1)
        else:
            with _CWD_LOCK:
                old = os.getcwd()
                os.chdir(self.memfiles)
                try:
                    self._lib.inference(raw.ctypes.data, out.ctypes.data, len(x), 1)
                finally:
                    os.chdir(old)
        val = unpack_fields(out, self.n_out, self.width).astype(np.float64)
        signed_off = self.k_out * 2.0 ** (self.i_out + self.f_out)
        val = np.mod(val + signed_off, 2.0**self.width) - signed_off  # two's complement when signed
        return np.ldexp(val, -self.f_out)


def check_widths(comb) -> None:
    """The simulation's limits, before anything is built: input words of at most 32 bits (da4ml's
    binder), outputs of at most 53 (float64)."""
    from da4ml.codegen.rtl.rtl_model import get_io_kifs

    bits_in, bits_out = (sum(int(np.max(v)) for v in kif) for kif in get_io_kifs(comb))
    if bits_in > 32:
        raise UnsupportedError(
            f"the RTL input is {bits_in} bits wide; da4ml's simulation passes at most 32",
            "narrow the model's input format",
        )
    if bits_out > MAX_OUT_BITS:
        raise UnsupportedError(
            f"the RTL output is {bits_out} bits wide; float64 outputs hold {MAX_OUT_BITS} bits exactly",
            "narrow the model's output quantizer",
        )


def _out_words(n_out: int, width: int) -> int:
    return -(-n_out * width // 32)


def unpack_fields(words: np.ndarray, n: int, width: int) -> np.ndarray:
    """The `n` fields of `width` bits (<= 64), least significant first, of the output bus read as
    32-bit words (one row per event): unsigned, as uint64."""
    w = np.asarray(words).view(np.uint32).astype(np.uint64)
    out = np.zeros((len(w), n), dtype=np.uint64)
    mask = np.uint64((1 << width) - 1)
    for i in range(n):
        idx, off = divmod(i * width, 32)
        acc, got = w[:, idx] >> np.uint64(off), 32 - off
        while got < width:
            idx += 1
            acc |= w[:, idx] << np.uint64(got)
            got += 32
        out[:, i] = acc & mask
    return out


def raw_word_binder(binder: Path) -> None:
    """Make da4ml's Verilator binder hand back the output bus as raw 32-bit words (its own unpacking
    takes fields of at most 32 bits: TFC_1W2A's affine head is 35); `unpack_fields` splits them."""
    text = binder.read_text()
    n_out = int(re.search(r"N_out = (\d+);", text).group(1))
    bw = int(re.search(r"max_out_bw = (\d+);", text).group(1))
    text = re.sub(r"N_out = \d+;", f"N_out = {_out_words(n_out, bw)};", text)
    binder.write_text(re.sub(r"max_out_bw = \d+;", "max_out_bw = 32;", text))


def build_rtl_sim(rtl_dir: Path, comb=None) -> tuple[RTLSim, float, bool]:
    """Verilate and compile `rtl_dir` (or take the cached library); returns (sim, seconds, cache hit)."""
    rtl_dir = Path(rtl_dir)
    comb = comb if comb is not None else SoftwareModel.load(rtl_dir).comb
    check_widths(comb)
    files = sorted(p for p in (rtl_dir / "src").rglob("*") if p.is_file()) + sorted((rtl_dir / "sim").glob("*"))
    key = digest(
        *(b for p in files if p.is_file() for b in (p.relative_to(rtl_dir).as_posix(), p.read_bytes())),
        " ".join(RTL_MAKE),
        BINDER,
    )[:32]
    lib = cache.root().rtl_sim(key)
    t0 = time.perf_counter()
    mem = rtl_dir / "src" / "memfiles"
    if cache.get(lib) is not None:
        return RTLSim(lib, comb, mem), time.perf_counter() - t0, True
    lib.parent.mkdir(parents=True, exist_ok=True)
    with scratch_dir(lib.parent) as tmp:
        work = Path(tmp) / "rtl"
        shutil.copytree(rtl_dir / "src", work / "src")
        shutil.copytree(rtl_dir / "sim", work / "sim")
        raw_word_binder(work / "sim" / "model_wrapper_binder.cc")
        env = {
            **os.environ,
            **build_env(),
            "VM_PREFIX": "model_wrapper",
            "STAMP": "tml",
            "EXTRA_CXXFLAGS": "",
            "VERILATOR_FLAGS": "",
            "N_JOBS": str(max(1, min(2, cores()))),
        }
        r = subprocess.run(
            ["make", "-f", "build_binder.mk", *RTL_MAKE], cwd=work / "sim", env=env, capture_output=True, text=True
        )
        if r.returncode:
            raise ToolError(
                f"building the Verilator simulation of {rtl_dir} failed:\n{(r.stderr or r.stdout)[-3000:]}",
                "check that g++, make and perl work; see trigger_ml/compile/verilator.py",
            )
        cache.put(work / "sim" / "libmodel_wrapper_tml.so", lib)
    return RTLSim(lib, comb, mem), time.perf_counter() - t0, False
