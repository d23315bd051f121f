"""Predictions shipped with a model file are checked at import (issue 27, item 7): an exact import
reproduces them bit for bit or is refused (exit 1, nothing written); a bad predictions file is one
error (exit 3). The "framework" outputs are Google QKeras's published formulas in numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trigger_ml.cli import main
from trigger_ml.errors import EXIT_MISMATCH, EXIT_USAGE

from .kfiles import k2_input, k2_layer, k2_model, write_json_h5
from .test_qkeras_front import qk, qk_bits

pytestmark = pytest.mark.slow
F32 = np.float32
KERNEL = np.array([[0.3, -0.55], [0.8, 0.1], [-0.2, 0.45]], F32)
BIAS = np.array([0.1, -0.3], F32)


def _qkeras_model(d: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A QKeras QDense (input quantizer, kernel and bias quantizers) and its outputs on 64 inputs."""
    layers = [
        k2_input("x", (3,)),
        k2_layer("QActivation", "in_q", "x", activation="quantized_bits(10,2,alpha=1)"),
        k2_layer(
            "QDense",
            "d",
            "in_q",
            units=2,
            activation="linear",
            kernel_quantizer=qk("quantized_bits", bits=4, integer=0, alpha=1),
            bias_quantizer=qk("quantized_bits", bits=8, integer=1, alpha=1),
        ),
    ]
    src, weights = write_json_h5(d, k2_model(layers, ["x"], ["d"]), {"d": {"kernel": KERNEL, "bias": BIAS}})
    x = np.random.default_rng(4).integers(-400, 400, (64, 3)) / 128.0
    y = qk_bits(x, 10, 2, alpha=1) @ qk_bits(KERNEL, 4, 0, alpha=1) + qk_bits(BIAS, 8, 1, alpha=1)
    return src, weights, x, y


def _exit(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


def test_shipped_predictions_are_reproduced_and_recorded(tmp_path):
    src, weights, x, y = _qkeras_model(tmp_path)
    np.savez(tmp_path / "framework.npz", x=x, y=y)
    run = tmp_path / "run"
    main(
        [
            "import",
            str(src),
            "--weights",
            str(weights),
            "--out",
            str(run),
            "--predictions",
            str(tmp_path / "framework.npz"),
        ]
    )
    pred = json.loads((run / "metrics.json").read_text())["import"]["predictions"]
    assert pred["check"] == "exact" and pred["mismatched"] == 0 and pred["events"] == len(x)


def test_predictions_beside_the_file_that_differ_refuse_the_import(tmp_path, capsys):
    src, weights, x, y = _qkeras_model(tmp_path)
    y[5, 1] += 2.0**-6  # one output off by one step of its grid
    np.savez(tmp_path / "model.predictions.npz", x=x, y=y)  # the companion of model.json
    code, err = _exit(["import", str(src), "--weights", str(weights), "--out", str(tmp_path / "run")], capsys)
    assert code == EXIT_MISMATCH and "model.predictions.npz" in err and "1/64 events; first event 5" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "arrays, words",
    [
        ({"x": np.array([1, None], dtype=object), "y": np.zeros((2, 2))}, "'x' is an object array"),
        ({"x": np.zeros((4, 3))}, "needs arrays 'x' and 'y'"),
        ({"x": np.zeros((4, 5)), "y": np.zeros((4, 2))}, "the model takes (3,)"),
    ],
    ids=["object-array", "no-y", "wrong-shape"],
)
def test_a_bad_predictions_file_is_one_error(tmp_path, capsys, arrays, words):
    src, weights, _, _ = _qkeras_model(tmp_path)
    np.savez(tmp_path / "p.npz", **arrays)
    argv = ["import", str(src), "--weights", str(weights), "--out", str(tmp_path / "run"), "--predictions"]
    code, err = _exit([*argv, str(tmp_path / "p.npz")], capsys)
    assert code == EXIT_USAGE and "p.npz" in err and words in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
