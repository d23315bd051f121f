"""Hostile or broken model files through `trigger-ml import` (issue 27, items 8, 9 and 12): each is one
clear error with exit 3 naming the file and the fix, refused before what it only declares is
allocated or run (a 30000 x 30000 constant, a zip bomb, an 8 GiB sparse external-data file, a
constant Loop of 10**15 trips, 2,000 layers), nothing written. The files are built in
tests/interop/hostile.py; the same builders give the files measured under /usr/bin/time."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time

import pytest

from trigger_ml.cli import main

from . import hostile

pytest.importorskip("onnx")

LIMIT_FIX = "--max-model-mb"
# case -> fragments the one message must hold (besides the file's name and exit 3)
RESOURCES = {
    "onnx_constant_of_shape": ("ConstantOfShape", "900,000,000 values", "over the limit of 256 MB", LIMIT_FIX),
    "onnx_constant_loop": ("(Loop) would have to run at import", "fold the constant subgraph"),
    "onnx_sparse_external": ("tensor 'w'", "2,147,483,648 values", "checked before reading it", LIMIT_FIX),
    "h5_unwritten_dataset": ("[30000, 30000]", "over the limit of 256 MB", LIMIT_FIX),
    "keras_zip_bomb": ("zip entry 'model.weights.h5'", "over the limit of 256 MB", LIMIT_FIX),
    "keras_deep": ("2001 layers, more than the limit of 512", "--max-layers"),
    "onnx_deep": ("2000 nodes on the data path, more than the limit of 512", "--max-layers"),
}
VALUES = {
    "keras_nan": ("weight 'd/kernel:0' of layer 'd' holds 1 NaN or infinite", "finite number"),
    "keras_inf": ("weight 'd/bias:0' of layer 'd' holds 1 NaN or infinite", "finite number"),
    "keras_negative_shape": ("input shape [-4]: every size must be a positive integer", "as Keras wrote them"),
    "onnx_nan": ("NaN or infinite weights: node 'z0' (dense) weight 'kernel'", "finite number"),
    "onnx_inf": ("NaN or infinite weights: node 'z0' (dense) weight 'kernel'", "finite number"),
    "json_nested": ("nested too deeply", "as Keras wrote it"),
    "onnx_raw_short": ("tensor 'w0' of shape [4, 4] holds 60 values or bytes, needs 64", "re-export"),
    "onnx_external_short": (
        "tensor 'w0' of shape [4, 4] needs 64 bytes at offset 0 of 'w.bin' (56 bytes)",
        "re-export",
    ),
    "onnx_bounds_overflow": ("interval bounds reach infinity", "check the model's weights"),
    "qkeras_bits_1e5": ("layer 'qd' (QDense): kernel quantized_bits", "bits=100000 is outside the allowed range 0..53"),
    "qkeras_bits_1e9": ("layer 'qd' (QDense)", "bits=1000000000 is outside the allowed range 0..53"),
    "qkeras_integer_minus_1e9": (
        "layer 'qd' (QDense): kernel quantized_bits(bits=8, integer=-1000000000)",
        "integer=-1000000000 is outside the allowed range -53..53",
    ),
    "qkeras_po2_1e9": ("quantized_po2", "bits=1000000000 is outside the allowed range 0..53"),
    "qkeras_relu_1e6": ("layer 'qa' (QActivation)", "bits=1000000 is outside the allowed range 0..53"),
    "qkeras_relu_integer_1e6": ("quantized_relu(bits=8, integer=1000000)", "outside the allowed range -53..53"),
}
BUILDERS = {**hostile.RESOURCES, **hostile.VALUES}
BUILDERS["keras_zip_bomb"] = functools.partial(hostile.keras_zip_bomb, size=320 << 20)  # 320 MB: over 256


def _import(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(["import", *argv])
    out = capsys.readouterr()
    return exc.value.code, " ".join((out.out + out.err).split())


# The command runs in a child that writes its own peak resident memory (VmHWM of its address space after
# exec) when it exits: wait4's ru_maxrss would report this session's peak, which Linux carries over exec.
CHILD = """import atexit, os, sys
def _peak():
    with open('/proc/self/status') as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith('VmHWM:'))
    with open(os.environ['TML_TEST_PEAK'], 'w') as out:
        out.write(str(kb))
atexit.register(_peak)
from trigger_ml.cli import main
main(sys.argv[1:])
"""


def _measured(args: list[str], tmp_path) -> tuple[int, str, float, float]:
    """`trigger-ml ARGS` in a child with a 30 s limit: exit code, output, seconds, and the child's own
    peak resident memory in GB."""
    log, peak = tmp_path / "out.txt", tmp_path / "peak.txt"
    env = {**os.environ, "COLUMNS": "1000", "TML_TEST_PEAK": str(peak)}
    t0 = time.monotonic()
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=f, stderr=subprocess.STDOUT, env=env)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"still running after 30 s: trigger-ml {' '.join(args)}")
    return code, log.read_text(errors="replace"), time.monotonic() - t0, int(peak.read_text()) / 2**20


def _refused(case: str, fragments: tuple[str, ...], tmp_path, capsys) -> str:
    argv = BUILDERS[case](tmp_path)
    code, msg = _import([*argv, "--out", str(tmp_path / "run")], capsys)
    assert code == 3, msg
    assert msg.count("error:") == 1 and "fix:" in msg and "internal error" not in msg, msg
    assert tmp_path.name in msg  # the file is named
    for f in fragments:
        assert f in msg, msg
    assert not (tmp_path / "run").exists()
    return msg


@pytest.mark.parametrize("case", list(RESOURCES))
def test_a_file_declaring_too_much_is_refused_before_allocating(case, tmp_path):
    """Before: 6 GB resident (ConstantOfShape, h5, zip, external data), a hang (Loop), 300 s (deep
    Keras) or exit 5 (deep ONNX). Now each is refused from what the file declares, by a command of
    its own that ends within 30 s under 2 GB (its own peak, not this session's)."""
    argv = BUILDERS[case](tmp_path)
    code, out, seconds, peak_gb = _measured(["import", *argv, "--out", str(tmp_path / "run")], tmp_path)
    msg = " ".join(out.split())
    assert code == 3, msg
    assert msg.count("error:") == 1 and "fix:" in msg and "internal error" not in msg, msg
    assert tmp_path.name in msg  # the file is named
    for f in RESOURCES[case]:
        assert f in msg, msg
    assert not (tmp_path / "run").exists()
    assert seconds < 30, f"{seconds:.0f} s"
    assert peak_gb < 2, f"{peak_gb:.1f} GB resident"


@pytest.mark.parametrize("case", list(VALUES))
def test_a_bad_value_is_one_clear_error(case, tmp_path, capsys):
    """Before: exit 5 (NaN/inf, negative shape, deep JSON, short data, QKeras widths), exit 1 (a
    lowering rule "wrong"), or exit 0 with every weight zero (quantized_bits(8, -1000000000))."""
    _refused(case, VALUES[case], tmp_path, capsys)


def test_the_limits_are_options_and_environment_variables(tmp_path, capsys, monkeypatch):
    argv = hostile.keras_deep(tmp_path, depth=20)
    code, msg = _import([*argv, "--out", str(tmp_path / "run"), "--max-layers", "10"], capsys)
    assert code == 3 and "21 layers, more than the limit of 10" in msg
    monkeypatch.setenv("TRIGGER_ML_MAX_LAYERS", "12")
    code, msg = _import([*argv, "--out", str(tmp_path / "run")], capsys)
    assert code == 3 and "more than the limit of 12" in msg
    monkeypatch.delenv("TRIGGER_ML_MAX_LAYERS")
    code, msg = _import([*hostile.onnx_nan(tmp_path), "--out", str(tmp_path / "run"), "--max-model-mb", "1"], capsys)
    assert code == 3 and "finite number" in msg  # a small file passes a 1 MB limit
    code, msg = _import([*argv, "--out", str(tmp_path / "run"), "--max-model-mb", "0"], capsys)
    assert code == 3 and "--max-model-mb" in msg  # a limit below 1 is a usage error
    assert not (tmp_path / "run").exists()


def test_out_of_memory_while_importing_names_the_model_fix(tmp_path, capsys, monkeypatch):
    """Before: "use fewer events (--events, ...)", options import does not have."""
    import trigger_ml.interop as interop

    def oom(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(interop, "import_model", oom)
    code, msg = _import([*hostile.onnx_nan(tmp_path), "--out", str(tmp_path / "run")], capsys)
    assert code == 3 and "fewer events" not in msg and "out of memory while importing" in msg
    assert "--max-model-mb" in msg and "nan.onnx" in msg
