"""The golden model: the quantized Keras model evaluated in float64.

hgq2 computes in float32, which rounds any pre-quantizer value wider than 24 significant bits;
the float64 copy is exact for every value up to 53 bits, so it is the reference every firmware
level is compared with (docs/research, gotcha G1). Lives with training (which makes the model)
so that compile, interop and verify all reach it from below.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def float64_copy(model):
    """The same model with every layer and quantizer computing in float64, same weights."""
    import keras

    old_policy, old_floatx = keras.config.dtype_policy().name, keras.config.floatx()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")  # hgq2 quantizers take the global policy when built
    try:
        cfg = json.loads(json.dumps(model.get_config()).replace('"float32"', '"float64"'))
        m64 = keras.Model.from_config(cfg)
        m64.set_weights(model.get_weights())
    finally:
        keras.config.set_dtype_policy(old_policy)
        keras.config.set_floatx(old_floatx)
    return m64


class QuantizedModel:
    """The quantized Keras model (float64, exact): the `keras` level, `predict(x)` -> raw outputs."""

    def __init__(self, model) -> None:
        self.model = model
        self._m64 = float64_copy(model)

    @property
    def float64(self):
        """The float64 Keras model (for per-layer traces)."""
        return self._m64

    @classmethod
    def load(cls, path: str | Path) -> QuantizedModel:
        from trigger_ml.train.fit import load_model

        return cls(load_model(path))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs (float64, one row per event) of inputs `x` shaped as the model's input."""
        x = np.asarray(x, dtype=np.float64)
        y = self._m64.predict(x, batch_size=8192, verbose=0)
        return np.asarray(y, dtype=np.float64).reshape(len(x), -1)
