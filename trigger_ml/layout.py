"""Every path of a run directory, a firmware directory, a runs folder and the cache, in one place.

    runs/                       RunsDir: stages.json (stage stamps), summary.md/json, one RunDir per model
    runs/<model>/               RunDir (`trigger-ml train` or `trigger-ml import`)
        model.keras  float.keras  card.yaml  metrics.json  history.json  split.npz  plots/
        foreign/                an imported model's own file and reference (info.json, inputs.npy, outputs.npy)
        stock.json              instead of model.keras: a model for hls4ml's own converter (the fallback)
    firmware/<model>/           FirmwareDir (`trigger-ml compile`)
        card.yaml  manifest.json
        hls/                    hls4ml project; hls/keras_model.keras is the compiled model, byte for byte
        emulator/               C-ABI emulator library, header, sources, vector runner
        rtl/                    da4ml Verilog (src/), Verilator harness (sim/), comb.json
        reference/              what compile keeps of the run: float.keras, metrics.json, plots/, foreign/
        verify/                 result.json, mismatch reproducers
        report/                 report.json/md/html, synth.json, analytic.json, plots/
    $TRIGGER_ML_CACHE           Cache (default ~/.cache/trigger-ml)

Nothing else in the package spells these names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TMP_PREFIX = ".tml-tmp-"  # every temporary directory or file the package makes starts with this


@dataclass(frozen=True)
class Output:
    """A kind of output folder, for `atomic.atomic_dir(dest, kind=...)`: the file written in every
    such folder (`marker`: a JSON object holding `keys`, or a text containing `text`) and every name
    the folder may hold at its top (`entries`, shell patterns). An existing folder is replaced only
    when it is both: its marker says we wrote it and it holds nothing else."""

    name: str  # said in messages: "run directory", ...
    marker: str
    entries: tuple[str, ...]
    keys: tuple[str, ...] = ()
    text: str = ""
    option: str = "--out"  # the command-line option that names such a folder (said in fixes)


@dataclass(frozen=True)
class _Dir:
    """A directory of a known layout; `root` may be given as a string."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))


@dataclass(frozen=True)
class RunDir(_Dir):
    """A training (or import) run."""

    model = property(lambda self: self.root / "model.keras")
    float_model = property(lambda self: self.root / "float.keras")
    card = property(lambda self: self.root / "card.yaml")
    metrics = property(lambda self: self.root / "metrics.json")
    history = property(lambda self: self.root / "history.json")
    split = property(lambda self: self.root / "split.npz")
    plots = property(lambda self: self.root / "plots")
    foreign = property(lambda self: ForeignDir(self.root / "foreign"))
    onnx = property(lambda self: self.root / "onnx")  # `trigger-ml export --onnx` default
    stock = property(lambda self: self.root / "stock.json")  # a run for hls4ml's own converter (no model.keras)
    KEPT = ("float.keras", "metrics.json", "plots", "foreign")  # what compile keeps as reference/
    MARKER = "model.keras"  # a directory holding it is a run (an output of train or import)
    OUTPUT = Output(
        "run directory",
        "metrics.json",
        ("model.keras", "float.keras", "card.yaml", "metrics.json", "history.json", "split.npz", "plots")
        + ("foreign", "onnx", "stock.json"),
        keys=("data",),
    )


@dataclass(frozen=True)
class ForeignDir(_Dir):
    """An imported model's own file and reference outputs (`trigger_ml.interop`)."""

    info = property(lambda self: self.root / "info.json")
    inputs = property(lambda self: self.root / "inputs.npy")
    outputs = property(lambda self: self.root / "outputs.npy")
    onnx = property(lambda self: self.root / "model.onnx")

    def file(self, name: str) -> Path:
        return self.root / Path(name).name


@dataclass(frozen=True)
class FirmwareDir(_Dir):
    """A compiled model."""

    card = property(lambda self: self.root / "card.yaml")
    manifest = property(lambda self: self.root / "manifest.json")
    hls = property(lambda self: self.root / "hls")
    model = property(lambda self: self.root / "hls" / "keras_model.keras")
    vendor_report = property(lambda self: self.root / "hls" / "synthesis_report.json")
    emulator = property(lambda self: self.root / "emulator")
    emulator_lib = property(lambda self: self.root / "emulator" / "libtml_emulator.so")

    def plugin(self, lib: str) -> Path:
        """The CMSSW plugin library `emulator/<model>.so` (lib: the model name as a library stem)."""
        return self.root / "emulator" / f"{lib}.so"

    rtl = property(lambda self: self.root / "rtl")
    rtl_src = property(lambda self: self.root / "rtl" / "src")
    comb = property(lambda self: self.root / "rtl" / "comb.json")
    vivado_timing = property(
        lambda self: self.root / "rtl" / "output_model" / "reports" / "model_post_route_timing.rpt"
    )
    reference = property(lambda self: self.root / "reference")
    float_model = property(lambda self: self.root / "reference" / "float.keras")
    metrics = property(lambda self: self.root / "reference" / "metrics.json")
    training_plots = property(lambda self: self.root / "reference" / "plots")
    foreign = property(lambda self: ForeignDir(self.root / "reference" / "foreign"))
    verify = property(lambda self: self.root / "verify")
    verify_result = property(lambda self: self.root / "verify" / "result.json")
    report = property(lambda self: self.root / "report")
    report_json = property(lambda self: self.root / "report" / "report.json")
    report_md = property(lambda self: self.root / "report" / "report.md")
    report_html = property(lambda self: self.root / "report" / "report.html")
    synth = property(lambda self: self.root / "report" / "synth.json")
    analytic = property(lambda self: self.root / "report" / "analytic.json")
    MARKER = "manifest.json"  # a directory holding it is a compiled model (written last by compile)
    OUTPUT = Output(
        "firmware directory",
        MARKER,
        ("card.yaml", MARKER, "hls", "emulator", "rtl", "reference", "verify", "report", "patterns"),
        keys=("model", "model_sha256", "outputs_sha256"),
    )

    def reproducer(self, level: str, inputs: str) -> Path:
        return self.verify / f"mismatch_{level}_{inputs}.npz"


REPORT = Output(  # <firmware>/report/ (`trigger-ml report`)
    "report folder",
    "report.json",
    ("report.json", "report.md", "report.html", "synth.json", "analytic.json", "plots"),
    keys=("model", "sources"),
)
ONNX_EXPORT = Output(  # `trigger-ml export --onnx` (default <run>/onnx)
    "ONNX export", "export.json", ("export.json", "float.onnx", "model.qonnx.onnx"), keys=("float", "qonnx")
)
CMSSW_EXPORT = Output(  # `trigger-ml export --cmssw DIR` writes DIR/<model>/
    "CMSSW plugin export",
    "BuildFile.xml",
    ("BuildFile.xml", "README.md", "Makefile", "firmware", "hls4ml", "*.h", "*.cpp", "*.map", "*.so"),
    text="trigger-ml",
    option="--cmssw",
)


@dataclass(frozen=True)
class RunsDir(_Dir):
    """The folder `trigger-ml run` works in: one RunDir per model, the stage stamps and the summary."""

    stamps = property(lambda self: self.root / "stages.json")
    summary_md = property(lambda self: self.root / "summary.md")
    summary_json = property(lambda self: self.root / "summary.json")

    def run(self, model: str) -> RunDir:
        return RunDir(self.root / model)


def data_file(folder: Path, fast: bool) -> Path:
    """The default simulated data set of `trigger-ml run`."""
    return Path(folder) / ("ecal-fast.h5" if fast else "ecal.h5")


@dataclass(frozen=True)
class Cache(_Dir):
    """Content-addressed caches shared by every run on the machine."""

    @classmethod
    def default(cls) -> Cache:
        """$TRIGGER_ML_CACHE, else ~/.cache/trigger-ml."""
        env = os.environ.get("TRIGGER_ML_CACHE")
        return cls(Path(env) if env else Path.home() / ".cache" / "trigger-ml")

    def firmware(self, key: str) -> Path:
        return self.root / "firmware" / key

    def library(self, key: str) -> Path:
        return self.root / "lib" / f"{key}.so"

    def loaded(self, sha: str) -> Path:
        return self.root / "loaded" / f"{sha}.so"

    def rtl_sim(self, key: str) -> Path:
        return self.root / "rtl" / f"{key}.so"

    def yosys(self, key: str) -> Path:
        return self.root / "yosys" / f"{key}.json"

    def pch(self, key: str) -> Path:
        return self.root / "pch" / key

    def bin(self, key: str) -> Path:
        return self.root / "bin" / key

    def plugin(self, key: str) -> Path:
        return self.root / "plugin" / f"{key}.so"

    def driver(self, key: str) -> Path:
        return self.root / "driver" / f"{key}-tml_plugin_driver"


@dataclass(frozen=True)
class PointDir(_Dir):
    """One scan point: its run and firmware directories, its result and error."""

    run = property(lambda self: RunDir(self.root / "run"))
    firmware = property(lambda self: FirmwareDir(self.root / "firmware"))
    result = property(lambda self: self.root / "result.json")
    error = property(lambda self: self.root / "error.txt")


@dataclass(frozen=True)
class ScanDir(_Dir):
    """A design-space scan (`trigger-ml scan`): the points and their results."""

    spec = property(lambda self: self.root / "scan.json")
    results_csv = property(lambda self: self.root / "results.csv")
    results_md = property(lambda self: self.root / "results.md")
    results_json = property(lambda self: self.root / "results.json")
    pareto = property(lambda self: self.root / "pareto.png")

    def data(self, events: int, seed: int) -> Path:
        return self.root / "data" / f"ecal-{events}-seed{seed}.h5"

    def point(self, pid: str) -> PointDir:
        return PointDir(self.root / "points" / pid)
