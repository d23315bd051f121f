"""`trigger-ml export FW --cmssw DIR`: a compiled model's plugin as a self-contained source tree.

    DIR/<model>/Makefile            `make` builds <model>.so with g++ alone (plugin.mk, HLS = .)
    DIR/<model>/<model>.h ...       the plugin sources (trigger_ml.compile.plugin)
    DIR/<model>/hls4ml/emulator.h   the interface
    DIR/<model>/firmware/           hls4ml's project sources the plugin compiles (ap_types included)
    DIR/<model>/<model>.so          the library trigger-ml built and verified
    DIR/<model>/BuildFile.xml       what the loading producer's plugins/BuildFile.xml needs
    DIR/<model>/README.md           how to build it and the CMSSW lines that load it

This is the layout of the cms-hls4ml model repositories (a Makefile beside the model's sources),
ready to become one, or a CMSSW external through a cmsdist spec as AXOL1TL and CICADA are.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from string import Template

from trigger_ml import __version__
from trigger_ml.atomic import atomic_dir
from trigger_ml.compile import manifest
from trigger_ml.compile.emulator import Interface
from trigger_ml.compile.plugin import (
    PluginSpec,
    ProjectIO,
    build_plugin,
    library_name,
    namespace_of,
    write_sources,
)
from trigger_ml.layout import FirmwareDir


def export_cmssw(fw_dir: str | Path, dest: str | Path) -> Path:
    """Write `dest/<model>/` (atomically) from a compiled model directory; returns it. The plugin is
    built into the compiled directory first when it has none."""
    fw = FirmwareDir(fw_dir)
    fw_dir = fw.root
    m = manifest.read(fw_dir)
    iface = Interface.from_json(m["interface"]["emulator"])
    lib = library_name(m["model"])
    built = fw.plugin(lib)
    if not built.exists():
        build_plugin(fw.hls, fw.emulator, PluginSpec.of(m, __version__))
    else:
        manifest.check(fw_dir, [built.relative_to(fw_dir).as_posix()], m)  # export only the verified library
    out = Path(dest) / lib
    with atomic_dir(out, marker="BuildFile.xml") as tmp:
        shutil.copytree(fw.hls / "firmware", tmp / "firmware")
        write_sources(fw.hls, tmp, PluginSpec.of(m, __version__), hls_rel=".")
        (tmp / "plugin.mk").rename(tmp / "Makefile")
        shutil.copyfile(built, tmp / built.name)
        io = ProjectIO.read(fw.hls)
        values = {
            "lib": lib,
            "ns": namespace_of(lib),
            "model": m["model"],
            "version": __version__,
            "model_sha256": m["model_sha256"],
            "n_in": iface.n_in,
            "n_out": iface.n_out,
            "in_ctype": io.in_ctype,
            "out_ctype": io.out_ctype,
            "in_frac": iface.input.frac,
            "out_frac": iface.output.frac,
        }
        tpl = resources.files("trigger_ml.compile") / "templates" / "plugin" / "export"
        for name in ("BuildFile.xml", "README.md"):
            (tmp / name).write_text(Template(tpl.joinpath(name).read_text()).substitute(values))
    return out
