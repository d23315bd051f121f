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
from trigger_ml.atomic import atomic_dir, check_destination
from trigger_ml.compile import manifest
from trigger_ml.compile.emulator import Interface
from trigger_ml.compile.plugin import (
    PluginSpec,
    ProjectIO,
    compile_plugin,
    library_name,
    namespace_of,
    write_sources,
)
from trigger_ml.errors import UnsupportedError
from trigger_ml.layout import CMSSW_EXPORT, FirmwareDir


def export_cmssw(fw_dir: str | Path, dest: str | Path) -> Path:
    """Write `dest/<model>/` (atomically) from a compiled model directory; returns it. The firmware
    directory is only read: its manifest validated, its links and sources checked against the manifest
    (a changed tree is refused), and the plugin, when it has none, built into the export instead."""
    fw = FirmwareDir(fw_dir)
    fw_dir = fw.root
    m = manifest.read(fw_dir)
    if not m.get("plugin", {}).get("written", False):
        raise UnsupportedError(
            f"{fw_dir}: compiled without a CMSSW plugin ({m.get('plugin', {}).get('reason', 'none recorded')})",
            "the CMSSW plugin supports io_parallel models with one input and one output",
        )
    manifest.check_sources(fw_dir, m)  # links leaving it and a changed tree: refused, nothing compiled
    spec = PluginSpec.of(m, __version__)
    iface = Interface.from_json(m["interface"]["emulator"])
    io = ProjectIO.read(fw.hls)
    io.check_sizes(iface, fw.manifest)  # the manifest's sizes are the project's
    lib = library_name(m["model"])
    out = Path(dest) / lib
    check_destination(out, CMSSW_EXPORT)  # before building anything
    built = fw.plugin(lib)
    if built.exists():
        manifest.check(fw_dir, [built.relative_to(fw_dir).as_posix()], m)  # export only the verified library
    with atomic_dir(out, kind=CMSSW_EXPORT) as tmp:
        shutil.copytree(fw.hls / "firmware", tmp / "firmware")
        write_sources(tmp, tmp, spec, hls_rel=".")  # the copy of the project (tmp/firmware) is the project
        (tmp / "plugin.mk").rename(tmp / "Makefile")
        if not built.exists():  # the checked sources, built here: nothing is written into the firmware directory
            built = compile_plugin(tmp, tmp, lib)
        shutil.copyfile(built, tmp / f"{lib}.so")
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
