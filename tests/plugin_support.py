"""Compiled tiny models with their CMSSW plugin, for tests/compile/test_plugin.py, tests/verify and
tests/test_cmssw_cli.py (a second compile of a model in a session is a copy from the compile cache)."""

from trigger_ml import __version__
from trigger_ml.compile import Options, compile_run
from trigger_ml.compile.emulator import Interface
from trigger_ml.compile.plugin import build_plugin


def compile_with_plugin(run, out, strategy="latency"):
    """Compile a training run into `out` (no RTL: the plugin needs hls/) and build its plugin."""
    m = compile_run(run, out, Options(strategy=strategy, rtl=False)).manifest
    build_plugin(out / "hls", out / "emulator", m["model"], m["model_sha256"], Interface(**m["interface"]["emulator"]),
                 __version__)
    return out
