"""The CMSSW plugin: a compiled model as an `hls4mlEmulator::Model` in `emulator/<model>.so`.

CMS Phase-2 L1 emulators load hls4ml models through cms-hls4ml/hls4mlEmulatorExtras:
`hls4mlEmulator::ModelLoader("<model>")` dlopens `<model>.so` (RTLD_LAZY | RTLD_LOCAL) and calls
its `extern "C"` `create_model()` / `destroy_model(Model *)`. `write_sources` writes, beside the C-ABI
emulator in `emulator/`:

    hls4ml/emulator.h     the interface (hls4mlEmulator::Model), from its documented ABI
    <model>.h             input_t, result_t, n_inputs, n_outputs, ... in namespace hls4ml_<model>
    <model>_project.h     the project's header in that namespace, the std/ap_types headers before
    <model>_model.cpp     hls4ml's C simulation (../hls/firmware/myproject.cpp) in that namespace
    <model>_plugin.cpp    the Model subclass around it, and create_model / destroy_model
    <model>.map           the version script: only create_model, destroy_model, tml_plugin_info
    plugin.mk             `make -f plugin.mk` builds <model>.so with g++ alone

Symbol hygiene (cms-sw/cmssw#44435: two models loaded together clashed on weight symbols and a
trigger fired on every event): `<model>_model.cpp` includes hls4ml's `myproject.cpp` inside
`namespace hls4ml_<model> { ... }`, so the project, its weights, hls4ml's nnet templates and the
kernels hls4ml generates per model (`nnet::dense_da_3`, the same name in every model) all get the
model's namespace; the C++ standard library and ap_types headers the project reaches are included
before, outside (`outside_includes`). The hls4ml project is not changed (hls4ml's own `Namespace`
writer option would rewrite it and still leave nnet_utils and nnet_code_gen.h global). The build
adds hidden visibility and the version script, so `nm -D --defined-only` lists three functions.
The model's translation unit is compiled without exceptions (as the C simulation: 4x faster to
compile than with them), the Model class with them (a wrong payload type throws).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from string import Template

from trigger_ml.atomic import atomic_file, scratch_dir
from trigger_ml.compile import cache
from trigger_ml.compile.cache import digest, file_sha256
from trigger_ml.compile.emulator import Interface, _run, c_comment
from trigger_ml.compile.hls import PROJECT
from trigger_ml.compile.manifest import SHA256
from trigger_ml.errors import SchemaError, ToolError, UnsupportedError
from trigger_ml.layers import NAME
from trigger_ml.tools import compiler, compiler_version

CXXFLAGS = (
    "-O1",
    "-std=c++17",
    "-fPIC",
    "-fno-gnu-unique",
    "-fvisibility=hidden",
    "-fvisibility-inlines-hidden",
    "-w",
)  # exceptions on: prepare_input throws on a wrong payload
# -Bsymbolic: the library's own references bind inside it, whatever was loaded RTLD_GLOBAL before;
# -z nodelete: dlclose leaves it mapped, so a model outliving its ModelLoader (a loader local to a
# producer's constructor, as in L1MetPfProducer) keeps working.
LDFLAGS = ("-Wl,-Bsymbolic", "-Wl,-z,nodelete", "-Wl,--no-undefined")
EXPORTED = ("create_model", "destroy_model", "tml_plugin_info")
SOURCES = (".h", "_project.h", "_model.cpp", "_plugin.cpp", ".map")  # <model><suffix>, besides plugin.mk
INTERFACE_HEADER = "hls4ml/emulator.h"
_INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.MULTILINE)
_SIZE = re.compile(r"[A-Za-z0-9_]+(\*[A-Za-z0-9_]+)*")  # an array size of the top function: 10, N_IN*N_CH


def library_name(model: str) -> str:
    """The card's model name as a library and identifier stem: `eg-mlp v2` -> `eg_mlp_v2`."""
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", model).strip("_")
    if not stem:
        raise UnsupportedError(
            f"model name {model!r} has no letter or digit to name its plugin",
            "give the model card a name such as eg_mlp_v1",
        )
    return stem


def namespace_of(lib: str) -> str:
    """The model's C++ namespace (CMS's convention, e.g. hls4ml_axol1tl_v6)."""
    return f"hls4ml_{lib}"


@dataclass(frozen=True)
class ProjectIO:
    """The hls4ml project's top function: the names and C++ types of its input and output."""

    in_type: str
    out_type: str
    in_ctype: str
    out_ctype: str
    in_size: str = ""  # the array sizes of the top function as written (e.g. `10`, `N_INPUT_1_1`)
    out_size: str = ""

    @classmethod
    def read(cls, hls_dir: Path, project: str = PROJECT) -> ProjectIO:
        fw = Path(hls_dir) / "firmware"
        header = (fw / f"{project}.h").read_text()
        m = re.search(
            rf"void\s+{project}\s*\(\s*(\w+)\s+\w+\s*\[([^\]]*)\]\s*,\s*(\w+)\s+\w+\s*\[([^\]]*)\]\s*\)", header
        )
        if m is None:
            raise UnsupportedError(
                f"{fw / (project + '.h')}: the top function is not `void {project}(in_t x[N], "
                "out_t y[M])` (one array in, one array out)",
                "the CMSSW plugin supports io_parallel models with one input and one output",
            )
        defines = (fw / "defines.h").read_text()

        def ctype(name: str) -> str:
            t = re.search(rf"typedef\s+(.+?)\s+{name}\s*;", defines)
            if t is None or not re.fullmatch(r"ap_u?(fixed|int)<[^<>]+>", re.sub(r"\s+", "", t.group(1))):
                raise UnsupportedError(
                    f"{fw / 'defines.h'}: {name} is not an ap_fixed/ap_int typedef",
                    "the CMSSW plugin supports io_parallel models (ap types at the interface)",
                )
            return re.sub(r"\s+", "", t.group(1))

        in_size, out_size = (re.sub(r"\s+", "", m.group(i)) for i in (2, 4))
        for size in (in_size, out_size):
            if not _SIZE.fullmatch(size):
                raise UnsupportedError(
                    f"{fw / (project + '.h')}: the array size {size[:40]!r} of `{project}` is not a product of "
                    "numbers and macro names",
                    "the CMSSW plugin supports io_parallel models with one input and one output",
                )
        return cls(m.group(1), m.group(3), ctype(m.group(1)), ctype(m.group(3)), in_size, out_size)

    def check_sizes(self, iface: Interface, where: Path) -> None:
        """The manifest's sizes (`iface`) against the top function's arrays where written as numbers
        (the plugin's static_assert checks the rest when it is built)."""
        for side, size, n in (("input", self.in_size, iface.n_in), ("output", self.out_size, iface.n_out)):
            if size.isdigit() and int(size) != n:
                raise SchemaError(
                    f"{where}: interface.emulator says {n} {side} values, the project's top function has {size}",
                    "compile the model again (trigger-ml compile <run> --out <dir>)",
                )


def outside_includes(hls_dir: Path, project: str = PROJECT) -> list[str]:
    """The standard-library and ap_types headers that the project's sources include, spelled as
    they are, in first-seen order: the plugin includes them before opening the model's namespace."""
    fw = Path(hls_dir) / "firmware"
    ap = (fw / "ap_types").resolve()
    search = [Path(hls_dir), fw, fw / "ap_types"]
    out: list[str] = []
    seen: set[Path] = set()

    def visit(src: Path) -> None:
        seen.add(src)
        for kind, name in _INCLUDE.findall(src.read_text(errors="replace")):
            if kind == "<":
                spelled = f"<{name}>"
            else:
                hit = next((c for c in [src.parent / name, *(d / name for d in search)] if c.is_file()), None)
                if hit is None:
                    continue  # a header of a branch the build does not take (the compiler would say otherwise)
                hit = hit.resolve()
                if not hit.is_relative_to(ap):
                    if hit not in seen:
                        visit(hit)
                    continue
                spelled = f'"{hit.relative_to(ap).as_posix()}"'
            if spelled not in out:
                out.append(spelled)

    visit((fw / f"{project}.cpp").resolve())
    return out


@dataclass(frozen=True)
class PluginSpec:
    """What a plugin is built for: the model's name and file hash, its interface, trigger-ml's version."""

    model: str
    model_sha256: str
    iface: Interface
    version: str

    def __post_init__(self) -> None:
        """The name and hash reach C++, a Makefile and `tml_plugin_info()`'s key=value list: only an
        identifier and 64 hexadecimal digits are taken (a manifest is validated already; this is the
        second line of defence)."""
        if not NAME.fullmatch(self.model):
            raise SchemaError(
                f"model name {self.model[:80]!r} is not an identifier: no plugin is written for it",
                "letters, digits and '_', starting with a letter, at most 64 characters",
            )
        if not SHA256.fullmatch(self.model_sha256):
            raise SchemaError(f"model sha256 {self.model_sha256[:80]!r} is not 64 hexadecimal digits")

    @classmethod
    def of(cls, m: dict, version: str) -> PluginSpec:
        """From a compiled model's manifest."""
        return cls(m["model"], m["model_sha256"], Interface.from_json(m["interface"]["emulator"]), version)


def write_sources(
    hls_dir: Path, emu_dir: Path, spec: PluginSpec, project: str = PROJECT, hls_rel: str = "../hls"
) -> Path:
    """Write the plugin sources for one compiled model into `emu_dir` (`hls_rel`: the hls4ml project
    as plugin.mk finds it from there); returns the library path to build."""
    hls_dir, emu_dir = Path(hls_dir), Path(emu_dir)
    model, model_sha256, iface, version = spec.model, spec.model_sha256, spec.iface, spec.version
    lib, io = library_name(model), ProjectIO.read(hls_dir, project)
    io.check_sizes(iface, hls_dir / "firmware" / f"{project}.h")
    ns = namespace_of(lib)
    info = {
        "model": lib,
        "namespace": ns,
        "model_sha256": model_sha256,
        "n_inputs": iface.n_in,
        "n_outputs": iface.n_out,
        "input": io.in_ctype,
        "output": io.out_ctype,
        "input_frac": iface.input.frac,
        "output_frac": iface.output.frac,
        "trigger_ml": version,
        "hls4ml": _version("hls4ml"),
    }
    values = {
        "model": c_comment(model),
        "lib": lib,
        "ns": ns,
        "guard": lib.upper(),
        "version": version,
        "model_sha256": model_sha256,
        "project": project,
        "n_in": iface.n_in,
        "n_out": iface.n_out,
        "in_frac": iface.input.frac,
        "out_frac": iface.output.frac,
        "in_type": io.in_type,
        "out_type": io.out_type,
        "in_ctype": io.in_ctype,
        "out_ctype": io.out_ctype,
        "in_size": io.in_size,
        "out_size": io.out_size,
        "cxxflags": " ".join(CXXFLAGS),
        "ldflags": " ".join(LDFLAGS),
        "hls": hls_rel,
        "in_note": "the model's input; per-input grids in ../manifest.json" if iface.n_in > 1 else "the model's input",
        "info": " ".join(f"{k}={v}" for k, v in info.items()),
        "outside_includes": "".join(
            f"#if __has_include({h})\n#include {h}\n#endif\n" for h in outside_includes(hls_dir, project)
        ),
    }
    tpl = resources.files("trigger_ml.compile") / "templates" / "plugin"
    (emu_dir / "hls4ml").mkdir(parents=True, exist_ok=True)
    (emu_dir / INTERFACE_HEADER).write_text(tpl.joinpath(INTERFACE_HEADER).read_text())
    for src, dest in (
        ("model.h", f"{lib}.h"),
        ("project.h", f"{lib}_project.h"),
        ("model.cpp", f"{lib}_model.cpp"),
        ("plugin.cpp", f"{lib}_plugin.cpp"),
        ("plugin.map", f"{lib}.map"),
        ("plugin.mk", "plugin.mk"),
    ):
        (emu_dir / dest).write_text(Template(tpl.joinpath(src).read_text()).substitute(values))
    return emu_dir / f"{lib}.so"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def plugin_key(hls_dir: Path, emu_dir: Path, lib: str, flags: tuple[str, ...]) -> str:
    parts: list[bytes | str] = [compiler_version(compiler("CXX", "g++")), " ".join(flags), " ".join(LDFLAGS), "plugin"]
    fw = hls_dir / "firmware"
    files = [p for p in sorted(fw.rglob("*")) if p.is_file() and p.suffix in (".h", ".cpp", ".hpp")]
    for p in files:
        parts += [p.relative_to(fw).as_posix(), p.read_bytes()]
    for name in (INTERFACE_HEADER, *(f"{lib}{s}" for s in SOURCES)):
        parts += [name, (emu_dir / name).read_bytes()]
    return digest(*parts)[:32]


def build_plugin(hls_dir: Path, emu_dir: Path, spec: PluginSpec, flags: tuple[str, ...] = CXXFLAGS) -> Path:
    """Write the sources and put `<model>.so` into `emu_dir` (built with g++, cached by the hash of
    the project, the sources and the flags); returns its path."""
    hls_dir, emu_dir = Path(hls_dir).resolve(), Path(emu_dir).resolve()
    dest = write_sources(hls_dir, emu_dir, spec)
    cached = compile_plugin(hls_dir, emu_dir, dest.stem, flags)
    with atomic_file(dest) as tmp:  # a process that loaded the old library keeps a valid mapping
        shutil.copyfile(cached, tmp)
    return dest


def compile_plugin(hls_dir: Path, emu_dir: Path, lib: str, flags: tuple[str, ...] = CXXFLAGS) -> Path:
    """The plugin built from the sources in `emu_dir` and the project in `hls_dir` (nothing written
    there): the cache entry, built when missing or modified."""
    hls_dir, emu_dir = Path(hls_dir).resolve(), Path(emu_dir).resolve()
    cached = cache.root().plugin(plugin_key(hls_dir, emu_dir, lib, flags))
    if cache.get(cached) is None:
        with scratch_dir(cached.parent) as t:
            cxx = compiler("CXX", "g++")
            inc = [
                f"-I{emu_dir}",
                f"-I{hls_dir}",
                f"-I{hls_dir / 'firmware'}",
                f"-I{hls_dir / 'firmware' / 'ap_types'}",
            ]
            with ThreadPoolExecutor(2) as pool:
                glue = pool.submit(
                    _run,
                    [cxx, *flags, *inc, "-c", str(emu_dir / f"{lib}_plugin.cpp"), "-o", str(t / "plugin.o")],
                    f"building the Model class of {lib}.so",
                )
                _run(
                    [
                        cxx,
                        *flags,
                        "-fno-exceptions",
                        *inc,
                        "-c",
                        str(emu_dir / f"{lib}_model.cpp"),
                        "-o",
                        str(t / "model.o"),
                    ],
                    f"building the C simulation of {lib}.so",
                )
                glue.result()
            _run(
                [
                    cxx,
                    *flags,
                    str(t / "model.o"),
                    str(t / "plugin.o"),
                    "-o",
                    str(t / f"{lib}.so"),
                    "-shared",
                    f"-Wl,--version-script={emu_dir / (lib + '.map')}",
                    *LDFLAGS,
                    f"-Wl,-soname,{lib}.so",
                ],
                f"linking the CMSSW plugin {lib}.so",
            )
            cache.put(t / f"{lib}.so", cached)
    return cached


def exported_symbols(lib: Path) -> list[str]:
    """The dynamic symbols `lib` defines (`nm -D --defined-only`), names only."""
    nm = shutil.which("nm")
    if nm is None:
        raise ToolError("nm not found", "install binutils")
    r = subprocess.run([nm, "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=False)
    if r.returncode:
        raise ToolError(f"nm failed on {lib}: {r.stderr.strip()}")
    return sorted(line.split()[-1] for line in r.stdout.splitlines() if line.strip())


def manifest_entry(lib: Path) -> dict[str, object]:
    """The manifest's `plugin` field for a built library (compile adds it; verify checks against it)."""
    lib = Path(lib)
    return {
        "library": f"emulator/{lib.name}",
        "namespace": namespace_of(lib.stem),
        "exports": list(EXPORTED),
        "sha256": file_sha256(lib),
        "cxxflags": list(CXXFLAGS),
    }
