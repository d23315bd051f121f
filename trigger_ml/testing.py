"""Helpers for users' own test suites (pytest or plain asserts).

    from trigger_ml.testing import assert_bit_exact

    def test_firmware_is_exact():
        assert_bit_exact("runs/eg_mlp/model.keras", "firmware/eg_mlp", x)

`assert_bit_exact` compares the raw outputs of every level of a compiled model directory (C
simulation, da4ml software model, Verilator RTL) with the quantized Keras model by
`numpy.testing.assert_array_equal` (no tolerance) and, on a C-simulation mismatch, names the
first diverging layer in the assertion message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def assert_bit_exact(
    model: Any, firmware_dir: str | Path, x: np.ndarray, *, rtl: bool = True, rebuild: bool = False
) -> dict[str, int]:
    """Assert every level of `firmware_dir` equals `model` exactly on inputs `x`.

    `model`: a Keras model, a `.keras` file, or None for the model the firmware was compiled from.
    `x`: model inputs (values on the model's input grid), one row per event.
    `rebuild`: C++ sources that differ from the manifest are compiled and run (else refused), as
    `trigger-ml verify --rebuild`.
    Returns the number of events compared per level.
    """
    from trigger_ml.verify import exact
    from trigger_ml.verify.levels import QuantizedModel
    from trigger_ml.verify.trace import first_diverging_layer

    fw = Path(firmware_dir)
    levels = exact.load_levels(fw, rtl_sim=rtl, rebuild=rebuild)
    if model is not None:
        levels[exact.REFERENCE] = (
            QuantizedModel.load(model) if isinstance(model, (str, Path)) else QuantizedModel(model)
        )
    ref = levels.pop(exact.REFERENCE)
    x = np.asarray(x, dtype=np.float64)
    y_ref = ref.predict(x)
    counts = {}
    for name, level in levels.items():
        y = level.predict(x)
        msg = f"{fw}: {name} differs from the quantized model"
        if name == "csim" and y.shape == y_ref.shape and np.any(y != y_ref):
            i = int(np.flatnonzero(np.any(y != y_ref, axis=1))[0])
            diff = first_diverging_layer(fw, ref.float64, x[i], rebuild)
            msg += f" (event {i}; {diff.describe() if diff else 'every traced layer agrees'})"
        np.testing.assert_array_equal(y, y_ref, err_msg=msg)
        counts[name] = len(x)
    return counts
