"""Magnitude pruning for Keras 3 / hgq2: a polynomial sparsity schedule and in-graph masks.

pquant-ml 0.1.0 was evaluated and not used: it replaces layers with its own PQDense/PQConv
that neither hls4ml 1.3 nor da4ml 0.5 convert (docs/research/train-hgq2.md). This callback
keeps the model's own hgq2 layers. The mask is applied as the kernel variable's constraint, so
it runs inside the compiled train step after every optimizer update; masks only grow and ties
break by a stable sort, so a run is deterministic. A pruned weight is exactly 0.0, and every
hgq2 fixed-point quantizer maps 0.0 to 0.0, so the quantized kernel is zero there too.
"""

from __future__ import annotations

import keras  # noqa: E402
import numpy as np
from keras import ops  # noqa: E402


def polynomial_sparsity(step: int, target: float, begin: int, end: int, power: int = 3) -> float:
    """s(t) = target * (1 - (1 - p)**power), p = (t - begin) / (end - begin) clipped to [0, 1]."""
    if step < begin:
        return 0.0
    p = min(1.0, (step - begin) / max(1, end - begin))
    return float(target * (1.0 - (1.0 - p) ** power))


class MagnitudePruning(keras.callbacks.Callback):
    """Prune each named layer's kernel to its target sparsity between `begin` and `end` steps.

    `initial_masks` (e.g. the zeros of a pruned float twin, or an anomaly model's masked input
    rows) are kept from the first step, also on layers without a sparsity target.
    """

    def __init__(
        self,
        targets: dict[str, float],
        begin: int,
        end: int,
        frequency: int = 50,
        initial_masks: dict[str, np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        self.targets = {k: v for k, v in targets.items() if v > 0}
        self.begin, self.end, self.frequency = begin, end, frequency
        self.masks: dict[str, np.ndarray] = dict(initial_masks or {})
        self._vars: dict[str, keras.Variable] = {}
        self._old: dict[str, object] = {}
        self.step = 0

    def _kernel(self, name: str) -> keras.Variable:
        return self.model.get_layer(name).kernel

    def on_train_begin(self, logs=None) -> None:
        for name in {**self.targets, **self.masks}:
            k = self._kernel(name)
            mask = self.masks.setdefault(name, np.ones(tuple(k.shape), np.float32)).astype(np.float32)
            self.masks[name] = mask
            mv = self._vars[name] = keras.Variable(mask, trainable=False, name=f"{name}_prune_mask")
            old = self._old[name] = k.constraint
            k.constraint = lambda w, mv=mv, old=old: (old(w) if old is not None else w) * mv
        self.model.make_train_function(force=True)
        self._apply()

    def _apply(self) -> None:
        for name, mv in self._vars.items():
            mv.assign(self.masks[name])
            k = self._kernel(name)
            k.assign(k * self.masks[name])

    def _update(self) -> None:
        for name, target in self.targets.items():
            s = polynomial_sparsity(self.step, target, self.begin, self.end)
            w = np.abs(ops.convert_to_numpy(self._kernel(name))) * self.masks[name]
            n_prune = int(np.floor(s * w.size))
            if n_prune <= int((self.masks[name] == 0).sum()):
                continue
            order = np.argsort(w, axis=None, kind="stable")[:n_prune]
            m = np.ones(w.size, np.float32)
            m[order] = 0.0
            self.masks[name] = m.reshape(w.shape) * self.masks[name]

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.step += 1
        if self.begin <= self.step <= self.end + self.frequency and (self.step - self.begin) % self.frequency == 0:
            self._update()
            self._apply()

    def on_epoch_end(self, epoch, logs=None) -> None:
        if logs is not None:
            logs["sparsity"] = self.sparsity()

    def on_train_end(self, logs=None) -> None:
        self.step = max(self.step, self.end)
        self._update()
        self._apply()
        for name, old in self._old.items():
            self._kernel(name).constraint = old
        self._old.clear()

    def sparsity(self) -> float:
        total = sum(m.size for m in self.masks.values())
        return float(sum((m == 0).sum() for m in self.masks.values()) / max(1, total))


def kernel_sparsity(model) -> dict[str, float]:
    """Fraction of exactly-zero entries of each layer's kernel as the firmware sees it
    (the quantized kernel for hgq2 layers, the kernel otherwise)."""
    out = {}
    for layer in model.layers:
        k = getattr(layer, "qkernel", None)
        if k is None:
            k = getattr(layer, "kernel", None)
        if k is not None and layer.trainable:
            out[layer.name] = float((ops.convert_to_numpy(k) == 0).mean())
    return out
