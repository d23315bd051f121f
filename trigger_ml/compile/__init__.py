"""The compile stage: hls4ml HLS project, da4ml Verilog, C emulator; see `driver.py`.

Python API (mirrors `trigger-ml compile`):

    from trigger_ml.compile import Options, compile_run
    res = compile_run("runs/eg_mlp", "firmware/eg_mlp", Options(strategy="distributed_arithmetic"))
"""

from trigger_ml.compile.driver import Options, Result, compile_run

__all__ = ["Options", "Result", "compile_run"]
