"""Peak memory of a compile's g++ builds, estimated before they start, against what the machine has.

A compile runs g++ on the model's C simulation (`hls/firmware/myproject.cpp`) twice: for the
emulator library and for the CMSSW plugin. hls4ml writes every weight, bias and lookup table as a
C array of `ap_fixed` (class-type) initialisers in `firmware/weights/*.h`; g++ turns each element
into constructor code of one initialisation function, and its memory grows with the number of
elements (TFC_1W2A, a binary 784-input MLP of 144,126 values, takes 2.8 GB per g++ here; larger
binary MLPs of the field reached 9.5 GB per g++ and 14-20 GB for two: issue 27). Generated layer code (`nnet_code_gen.h`, e.g. a
convolution's unrolled buffers) adds to it. `estimate` models the peak of one build:

    peak = BASE + PER_VALUE * values + PER_CODE_BYTE * generated code bytes

calibrated with /usr/bin/time -v on g++ 12 -O1 (`CALIBRATION`). `check` refuses a compile whose
estimate is above the machine's available memory (MemAvailable) unless forced, and `parallel` says
whether the two builds may run side by side: only when both fit at once and each is below
`PARALLEL_BELOW`, so two large builds never run together.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trigger_ml.errors import TriggerMLError

GB = 1e9
# Peak RSS of one g++ -O1 build of myproject.cpp, measured here (/usr/bin/time -v, g++ 12), against
# (weight and table values, generated code bytes): the peer models imported and compiled by trigger-ml and
# plain ap_fixed arrays (no nnet headers: 0.19 GB less). Linear in the values: the model is on the safe side.
CALIBRATION = (
    ("KERAS_1layer", 4_481, 2_580, 0.38e9),
    ("KERAS_3layer_batch_norm", 4_389, 7_698, 0.44e9),
    ("hgq_mnist_homogeneous (conv)", 4_846, 422_787, 0.50e9),
    ("ap_fixed array of 2,000", 2_000, 0, 0.23e9 + 0.19e9),
    ("ap_fixed array of 8,000", 8_000, 0, 0.36e9 + 0.19e9),
    ("ap_fixed array of 16,000", 16_000, 0, 0.54e9 + 0.19e9),
    ("ap_fixed<2,2> array of 32,000 (+-1)", 32_000, 0, 0.75e9 + 0.19e9),  # the model says 0.97
    ("TFC_1W2A (g++ of myproject.cpp alone)", 144_126, 3_820, 2.77e9),  # the model says 3.33
)
BASE = 0.30 * GB  # ap_types and nnet_utils alone (the precompiled header's build: 0.31 GB)
PER_VALUE = 21e3  # bytes per value (the ap_fixed arrays: 21-22 kB more per value)
PER_CODE_BYTE = 220.0  # bytes per byte of myproject.cpp and nnet_code_gen.h (the conv model)
PARALLEL_BELOW = 2 * GB  # builds estimated above this run one after another
CODE = ("myproject.cpp", "nnet_utils/nnet_code_gen.h")
_DECL = re.compile(rb"^\s*(?:static\s+)?(?:const\s+)?[\w:<>, ]+?\s+\w+\s*\[(\d+)\]\s*(?:=|;)")


@dataclass(frozen=True)
class Estimate:
    """The estimated peak memory of one g++ build of the model, and what it was estimated from."""

    values: int  # weight, bias and table elements the project initialises
    peak_bytes: float  # of one build
    code_bytes: int = 0  # generated C++ (myproject.cpp, nnet_code_gen.h)

    def describe(self) -> str:
        return (
            f"about {self.peak_bytes / GB:.1f} GB per g++ build (estimated from {self.values} weight and table "
            f"values and {self.code_bytes / 1e3:.0f} kB of generated code)"
        )


def count_values(hls_dir: Path) -> int:
    """Elements of the arrays declared in the project's `firmware/weights/*.h` (hls4ml writes one
    array per file, `type name[N] = {...}`)."""
    total = 0
    for p in sorted((Path(hls_dir) / "firmware" / "weights").glob("*.h")):
        with open(p, "rb") as f:
            for line in f:
                m = _DECL.match(line[:400])
                if m:
                    total += int(m[1])
    return total


def peak(values: int, code_bytes: int) -> float:
    """The model's peak memory (bytes) of one build."""
    return BASE + PER_VALUE * values + PER_CODE_BYTE * code_bytes


def estimate(hls_dir: Path) -> Estimate:
    """The peak memory of one g++ build of the project's C simulation."""
    fw = Path(hls_dir) / "firmware"
    n = count_values(hls_dir)
    code = sum((fw / c).stat().st_size for c in CODE if (fw / c).is_file())
    return Estimate(n, peak(n, code), code)


WEIGHTS = ("kernel", "bias")  # a Keras variable whose name ends so becomes an hls4ml weights array


def from_model(model: Any) -> Estimate:
    """The estimate before hls4ml converts anything, from the Keras model's kernels and biases (a lower
    bound of the project's values: hls4ml adds tables, never drops a weight). hgq2's quantizer
    variables (bit widths per weight) are not arrays of the firmware and are not counted."""
    n = sum(int(math.prod(w.shape)) for w in model.weights if w.path.rsplit("/", 1)[-1].endswith(WEIGHTS))
    return Estimate(n, peak(n, 0), 0)


def available_bytes() -> float:
    """Memory available to new processes: Linux MemAvailable (else free physical pages), and no more
    than the room left under this process's cgroup v2 limit (a container's memory.max)."""
    avail = float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        cg = Path("/sys/fs/cgroup")
        limit = (cg / "memory.max").read_text().strip()
        if limit.isdigit():
            avail = min(avail, float(int(limit) - int((cg / "memory.current").read_text())))
    except (OSError, ValueError):
        pass
    return avail


def parallel(est: Estimate, available: float) -> bool:
    """Whether the two builds (emulator, plugin) may run at once: both small and both fitting."""
    return est.peak_bytes < PARALLEL_BELOW and 2 * est.peak_bytes <= available


def check(est: Estimate, model: str, force: bool = False, available: float | None = None) -> None:
    """Refuse (exit 3) a compile whose g++ build needs more memory than the machine has, unless forced."""
    avail = available_bytes() if available is None else available
    if est.peak_bytes > avail and not force:
        raise TriggerMLError(
            f"compiling {model} needs {est.describe()}, more than the {avail / GB:.1f} GB this machine has "
            "available: g++ would be ended by the out-of-memory killer",
            "compile on a machine with more memory, prune or shrink the model, or compile anyway with "
            "`trigger-ml compile --force` (Options(force=True) in Python)",
        )
