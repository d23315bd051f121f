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


def quiet_tensorflow() -> None:
    """Import TensorFlow with its C++ start-up lines (oneDNN, CUDA probing, absl's warning) kept off
    the terminal: they are printed before TF_CPP_MIN_LOG_LEVEL is read, so stderr's file descriptor
    is pointed at /dev/null for the import only. TRIGGER_ML_TF_LOGS=1 keeps them."""
    import sys

    if "tensorflow" in sys.modules or _os.environ.get("TRIGGER_ML_TF_LOGS"):
        return
    try:
        sys.stderr.flush()
        saved = _os.dup(2)
    except (OSError, ValueError):  # no real stderr (an embedding host): import as it is
        import tensorflow  # noqa: F401

        return
    null = _os.open(_os.devnull, _os.O_WRONLY)
    try:
        _os.dup2(null, 2)
        import tensorflow  # noqa: F401
    finally:
        _os.dup2(saved, 2)
        _os.close(saved)
        _os.close(null)
