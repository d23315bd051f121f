"""Compiled tiny models with their CMSSW plugin, for tests/compile/test_plugin.py, tests/verify and
tests/test_cmssw_cli.py (a second compile of a model in a session is a copy from the compile cache)."""

from trigger_ml.compile import Options, compile_run


def compile_with_plugin(run, out, strategy="latency"):
    """Compile a training run into `out` (no RTL: the plugin needs hls/) and build its plugin."""
    compile_run(run, out, Options(strategy=strategy, rtl=False))  # compile builds the plugin
    return out
