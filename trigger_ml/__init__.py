"""trigger-ml: quantization-aware Keras models to bit-exact FPGA Level-1 trigger firmware."""

__version__ = "0.1.0"

import os as _os

# before anything imports TensorFlow (hls4ml, hgq2 and keras do): one inter-op thread (hgq2's
# range tracking is deterministic only then) and no C++ log lines (a CPU-only machine prints a
# failed cuInit as an error); set TF_CPP_MIN_LOG_LEVEL yourself to see them
_os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def cores() -> int:
    """CPU threads this process may use: $TRIGGER_ML_THREADS (a scan worker's share), else every core."""
    return max(1, int(_os.environ.get("TRIGGER_ML_THREADS") or 0) or _os.cpu_count() or 1)
