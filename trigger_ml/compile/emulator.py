"""The emulator: hls4ml's C simulation as a C-ABI shared library, and the C-simulation level.

`emulator/` of a compiled model holds a header (`tml_emulator.h`: integers in, integers out,
formats documented), its source (around the project's own `myproject_bridge.cpp`), a Makefile
that builds with g++ alone, and `run_vectors.c`, a tiny program that runs a vector file. The
same library is what Python loads as the C simulation (`CSim.predict`), so the emulator users
link and the C simulation we verify are one binary. The library says its own sizes (`tml_n_in()`,
`tml_n_out()`): `CSim` sizes its buffers from the manifest only when they agree (`check_sizes`).

Builds run the two translation units in parallel with `CXXFLAGS` and are cached by the hash of
their sources and flags (`cache.py`): an unchanged model does not touch the compiler.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from trigger_ml import cores
from trigger_ml.atomic import atomic_file, scratch_dir
from trigger_ml.compile import cache
from trigger_ml.compile.cache import digest, file_sha256
from trigger_ml.compile.rtl import MIN_EVENTS_PER_THREAD
from trigger_ml.errors import SchemaError, ToolError, UnsupportedError
from trigger_ml.fixed import Fixed
from trigger_ml.tools import compiler, compiler_version

# Measured on the reference models (g++ 12): -O1 -fno-exceptions with the precompiled header
# builds myproject.cpp in 1.97 s against 3.0 s for hls4ml's -O3 (MLP, Latency), and -O1 runs
# the emulator several times faster than -O0. The arithmetic is integer (ap_fixed) and nothing
# throws; tests/compile/test_compile.py proves these flags and hls4ml's -O3 give identical outputs.
CXXFLAGS = ("-O1", "-fno-exceptions", "-std=c++17", "-fPIC", "-fno-gnu-unique", "-w")
SOURCES = ("tml_emulator.h", "tml_emulator.cpp", "run_vectors.c", "Makefile")
LIB = "libtml_emulator.so"
RUNNER = "run_vectors"
MAX_EXACT_BITS = 53  # raw integers travel through double inside the bridge


@dataclass(frozen=True)
class Interface:
    """The emulator's I/O: values per event and the fixed-point formats of input and output words."""

    n_in: int
    n_out: int
    input: Fixed
    output: Fixed

    @classmethod
    def from_formats(cls, formats: dict[str, Any]) -> Interface:
        """From `hls.io_formats` of the converted project (one input, one output)."""
        (i,), (o,) = formats["inputs"], formats["outputs"]
        for side, v in (("input", i), ("output", o)):
            if v["width"] > MAX_EXACT_BITS:
                raise UnsupportedError(
                    f"the emulator's {side} {v['format']} is wider than {MAX_EXACT_BITS} bits",
                    "narrow the model's output quantizer",
                )
        return cls(
            int(np.prod(i["shape"])), int(np.prod(o["shape"])), Fixed.parse(i["format"]), Fixed.parse(o["format"])
        )

    def to_json(self) -> dict[str, Any]:
        return {"n_in": self.n_in, "n_out": self.n_out, "input": str(self.input), "output": str(self.output)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Interface:
        return cls(int(d["n_in"]), int(d["n_out"]), Fixed.parse(d["input"]), Fixed.parse(d["output"]))

    def to_raw(self, x: np.ndarray) -> np.ndarray:
        """Model inputs -> raw input integers (floor onto the input grid, as the input quantizer)."""
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        if x.shape[1] != self.n_in:
            raise ValueError(f"the model takes {self.n_in} inputs per event, got {x.shape[1]}")
        if not np.all(np.isfinite(x)):
            raise ValueError("inputs contain NaN or infinity")
        return np.floor(np.ldexp(x, self.input.frac)).astype(np.int64)

    def from_raw(self, raw: np.ndarray) -> np.ndarray:
        return self.output.from_raw(raw)


def c_comment(text: str) -> str:
    """Text safe inside a C block comment on one line (names are validated already; this is the
    second line of defence)."""
    return re.sub(r"[^\x20-\x7e]", "?", str(text)).replace("*/", "*_/").replace("/*", "/_*")


def c_string(text: str) -> str:
    """Text safe inside a C string literal."""
    return "".join(c if c.isalnum() or c in "._-+: " else f"\\x{ord(c):02x}" for c in str(text) if ord(c) < 128)


def write_sources(dest: Path, iface: Interface, model: str, model_sha256: str, version: str) -> None:
    """Write the emulator sources for one compiled model into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    note = "the model's input quantizer grid is documented per input in ../manifest.json" if iface.n_in > 1 else ""
    values = {
        "model": c_comment(model),
        "model_sha256": c_string(model_sha256),
        "version": c_comment(version),
        "n_in": iface.n_in,
        "n_out": iface.n_out,
        "in_precision": str(iface.input),
        "in_frac": iface.input.frac,
        "out_precision": str(iface.output),
        "out_frac": iface.output.frac,
        "in_note": note,
        "cxxflags": " ".join(CXXFLAGS),
    }
    tpl = resources.files("trigger_ml.compile") / "templates"
    for name in SOURCES:
        (dest / name).write_text(Template(tpl.joinpath(name).read_text()).substitute(values))


def library_key(hls_dir: Path, emu_dir: Path, flags: tuple[str, ...]) -> str:
    parts: list[bytes | str] = [compiler_version(compiler("CXX", "g++")), " ".join(flags)]
    files = [p for p in sorted((hls_dir / "firmware").rglob("*")) if p.is_file() and p.suffix in (".h", ".cpp", ".hpp")]
    files += [hls_dir / "myproject_bridge.cpp", emu_dir / "tml_emulator.h", emu_dir / "tml_emulator.cpp"]
    for p in files:
        parts += [p.relative_to(p.parents[1]).as_posix() if p.is_relative_to(hls_dir) else p.name, p.read_bytes()]
    return digest(*parts)[:32]


def _run(cmd: list[str], what: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise ToolError(f"{Path(cmd[0]).name} failed {what}:\n{r.stderr[-3000:]}")


def precompiled_header(hls_dir: Path, flags: tuple[str, ...]) -> list[str]:
    """Flags that include a cached precompiled header of the library headers the project uses.

    Parsing ap_types and nnet_utils is a fifth of a Latency build; the headers are the same for
    every model of an hls4ml version, so the header is built once per machine and header set.
    Only unchanged headers go in (not the model's generated nnet_code_gen.h); g++ falls back to
    the plain header if the .gch does not apply, so this can change speed, never results.
    """
    fw = hls_dir / "firmware"
    wanted = re.findall(r'#include "(nnet_utils/nnet_\w+\.h)"', (fw / "parameters.h").read_text())
    headers = [
        "ap_fixed.h",
        "ap_int.h",
        "hls_stream.h",
        "nnet_utils/nnet_types.h",
        *(h for h in wanted if h != "nnet_utils/nnet_code_gen.h"),
    ]
    text = "".join(f"#include <{h}>\n" for h in ("iostream", "array", "cstddef", "cstdio", "tuple"))
    text += "".join(f'#include "{h}"\n' for h in headers)
    cxx = compiler("CXX", "g++")
    deps = [p for p in sorted((fw / "ap_types").rglob("*")) if p.is_file()]
    deps += [p for p in sorted((fw / "nnet_utils").glob("*.h")) if p.name != "nnet_code_gen.h"]
    key = digest(
        compiler_version(cxx),
        " ".join(flags),
        text,
        *(b for p in deps for b in (p.relative_to(fw).as_posix(), p.read_bytes())),
    )[:32]
    pch_dir = cache.root().pch(key)
    if cache.get(pch_dir / "tml_pch.h.gch") is None or (pch_dir / "tml_pch.h").read_text() != text:
        pch_dir.mkdir(parents=True, exist_ok=True)
        with scratch_dir(pch_dir.parent) as t:
            (t / "tml_pch.h").write_text(text)
            # the .gch is built from the project's own copies of the headers (byte-identical, by the key)
            _run(
                [
                    cxx,
                    *flags,
                    f"-I{fw}",
                    f"-I{fw / 'ap_types'}",
                    "-x",
                    "c++-header",
                    str(t / "tml_pch.h"),
                    "-o",
                    str(t / "tml_pch.h.gch"),
                ],
                "building the precompiled header",
            )
            with atomic_file(pch_dir / "tml_pch.h") as tmp:
                tmp.write_text(text)
            cache.put(t / "tml_pch.h.gch", pch_dir / "tml_pch.h.gch")
    return [f"-I{pch_dir}", "-include", "tml_pch.h"]


def build_library(
    hls_dir: Path, emu_dir: Path, flags: tuple[str, ...] = CXXFLAGS, pch: bool = True
) -> tuple[Path, bool]:
    """Build (or take from the cache) the emulator library; returns (cached library, cache hit)."""
    hls_dir, emu_dir = Path(hls_dir).resolve(), Path(emu_dir).resolve()
    lib = cache.root().library(library_key(hls_dir, emu_dir, flags))
    if cache.get(lib) is not None:
        return lib, True
    cxx = compiler("CXX", "g++")
    lib.parent.mkdir(parents=True, exist_ok=True)
    inc = [f"-I{emu_dir}", f"-I{hls_dir}", f"-I{hls_dir / 'firmware'}", f"-I{hls_dir / 'firmware' / 'ap_types'}"]
    with scratch_dir(lib.parent) as tmp:
        t = Path(tmp)
        extra = precompiled_header(hls_dir, flags) if pch else []
        with ThreadPoolExecutor(2) as pool:
            bridge = pool.submit(
                _run,
                [cxx, *flags, *extra, *inc, "-c", str(emu_dir / "tml_emulator.cpp"), "-o", str(t / "tml_emulator.o")],
                "building the emulator bridge",
            )
            _run(
                [
                    cxx,
                    *flags,
                    *extra,
                    *inc,
                    "-c",
                    str(hls_dir / "firmware" / "myproject.cpp"),
                    "-o",
                    str(t / "myproject.o"),
                ],
                f"building the C simulation of {hls_dir}",
            )
            bridge.result()
        _run(
            [cxx, *flags, "-shared", str(t / "tml_emulator.o"), str(t / "myproject.o"), "-o", str(t / LIB)],
            "linking the emulator",
        )
        cache.put(t / LIB, lib)
    return lib, False


def build_runner(emu_dir: Path) -> Path:
    """Compile run_vectors.c against the library in `emu_dir` (a fraction of a second)."""
    _run(
        [
            compiler("CC", "gcc"),
            "-O1",
            f"-I{emu_dir}",
            str(emu_dir / "run_vectors.c"),
            "-o",
            str(emu_dir / RUNNER),
            f"-L{emu_dir}",
            "-ltml_emulator",
            "-Wl,-rpath,$ORIGIN",
        ],
        "building run_vectors",
    )
    return emu_dir / RUNNER


def build(hls_dir: Path, emu_dir: Path) -> bool:
    """Put the library and the runner into `emu_dir`; returns whether the library came from the cache."""
    lib, hit = build_library(hls_dir, emu_dir)
    with atomic_file(emu_dir / LIB) as tmp:  # a process that loaded the old library keeps a valid mapping
        shutil.copyfile(lib, tmp)
    build_runner(emu_dir)
    return hit


def write_vectors(path: Path, raw: np.ndarray) -> None:
    np.savetxt(path, np.asarray(raw, dtype=np.int64).reshape(len(raw), -1), fmt="%d")


def run_vectors(emu_dir: Path, raw_in: np.ndarray, n_out: int) -> np.ndarray:
    """Run the compiled C program on a vector file; returns its raw integer outputs."""
    with scratch_dir() as tmp:
        fin, fout = Path(tmp) / "in.txt", Path(tmp) / "out.txt"
        write_vectors(fin, raw_in)
        r = subprocess.run([str(Path(emu_dir) / RUNNER), str(fin), str(fout)], capture_output=True, text=True)
        if r.returncode:
            raise ToolError(f"run_vectors failed: {r.stderr.strip()}")
        return np.loadtxt(fout, dtype=np.int64, ndmin=2).reshape(-1, n_out)


def loadable_copy(lib: Path, sha256: str | None = None) -> Path:
    """A copy of `lib` named by its content, checked to hold exactly the bytes `sha256` names (the
    dynamic loader reuses a library loaded from the same path, so a rebuilt emulator at an old
    path would silently run the old code; and only checked bytes are ever loaded)."""
    sha = file_sha256(lib)
    if sha256 is not None and sha != sha256:
        raise ToolError(
            f"{lib} does not match the sha256 its manifest records: it was modified or replaced "
            "since compile, so it is not loaded",
            "compile the model again (trigger-ml compile)",
        )
    dest = cache.root().loaded(sha[:32])
    if cache.get(dest) is None:
        cache.put(lib, dest)
    if file_sha256(dest) != sha:  # changed between the check and now
        raise ToolError(f"{dest} changed while it was being loaded", "run the command again")
    return dest


def check_sizes(lib: ctypes.CDLL, iface: Interface, path: Path) -> None:
    """The buffers handed to the library are sized from `iface` (the manifest's): refuse unless the
    library's own `tml_n_in()` / `tml_n_out()` say the same (a wrong n_out would let it write past them)."""
    try:
        fns = lib.tml_n_in, lib.tml_n_out
    except AttributeError:
        raise ToolError(
            f"{path} does not say its input and output sizes (no tml_n_in/tml_n_out: built by an older "
            "trigger-ml), so it is not run",
            "compile the model again with this trigger-ml",
        ) from None
    for fn in fns:
        fn.argtypes, fn.restype = [], ctypes.c_size_t
    got = (int(fns[0]()), int(fns[1]()))
    if got != (iface.n_in, iface.n_out):
        raise SchemaError(
            f"{path} takes {got[0]} inputs and writes {got[1]} outputs per event; its manifest says "
            f"{iface.n_in} and {iface.n_out} (interface.emulator): the manifest was edited, so it is not run",
            "compile the model again (trigger-ml compile <run> --out <dir>)",
        )


class CSim:
    """The C-simulation level: `predict(x)` through the emulator library (float64 in and out, exact).

    `sha256`: the library's recorded hash (the manifest's); the library is loaded only when its
    bytes match it."""

    def __init__(self, lib: Path, iface: Interface, sha256: str | None = None) -> None:
        self.lib_path = Path(lib)
        self.iface = iface
        self.lib = ctypes.CDLL(str(loadable_copy(self.lib_path, sha256)))
        self._fn = self.lib.tml_predict
        self._fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        self._fn.restype = ctypes.c_int
        check_sizes(self.lib, iface, self.lib_path)

    def predict_raw(self, raw: np.ndarray, threads: int | None = None) -> np.ndarray:
        """Raw integers in, raw integers out; large batches run on `threads` (default: all cores)
        in parallel: the C call releases the GIL and hls4ml's C simulation keeps no state."""
        raw = np.ascontiguousarray(raw, dtype=np.int64).reshape(len(raw), self.iface.n_in)
        out = np.empty((len(raw), self.iface.n_out), dtype=np.int64)
        threads = max(1, min(threads or cores(), len(raw) // MIN_EVENTS_PER_THREAD))
        bounds = np.linspace(0, len(raw), threads + 1).astype(int)

        def run(i: int) -> None:
            a, b = bounds[i], bounds[i + 1]
            self._fn(raw[a:b].ctypes.data, out[a:b].ctypes.data, int(b - a))

        if threads == 1:
            run(0)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(run, range(threads)))
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.iface.from_raw(self.predict_raw(self.iface.to_raw(x)))
