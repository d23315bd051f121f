"""Magnitude pruning for Keras 3 / hgq2 models: polynomial sparsity schedule, masks applied after every batch.

Works on any layer with a `kernel` variable (hgq QDense/QConv2D/QEinsumDense..., keras Dense/Conv2D).
Pruned kernel entries are exactly 0.0 in the float variable; every hgq2 fixed-point quantizer maps 0.0 -> 0.0
(round(0 * 2**f) == 0 for RND/RND_CONV/TRN, and 0 is inside every k/i/f range), so qkernel is exactly 0 there too.
"""
import numpy as np
import keras
from keras import ops


def polynomial_sparsity(step, target, begin, end, power=3, initial=0.0):
    """TF-MOT style: s(t) = target + (initial - target) * (1 - p)^power, p = (t - begin) / (end - begin) clipped."""
    if step < begin:
        return 0.0
    p = min(1.0, (step - begin) / max(1, end - begin))
    return float(target + (initial - target) * (1.0 - p) ** power)


class MagnitudePruning(keras.callbacks.Callback):
    """
    target_sparsity: float or {layer_name: float}; layers not in the dict are not pruned.
    begin_step/end_step: schedule in optimizer steps (batches). end_step=None -> 70% of total steps.
    frequency: recompute masks every `frequency` steps (masks are *applied* after every batch regardless).
    Masks only ever grow (a pruned weight stays pruned) -> monotone, deterministic.
    in_graph=True: the mask is a keras.Variable and is applied as the kernel variable's `constraint`, i.e. inside
      the compiled train step right after every optimizer update (no per-batch Python work; works with
      steps_per_execution > 1 for the masking itself). The train function is re-traced in on_train_begin so the
      constraint is part of the graph even if the model was fit before. The original constraint is restored at the end.
    in_graph=False: kernel.assign(kernel * mask) from Python after every batch (needs steps_per_execution == 1).
    """

    def __init__(self, target_sparsity=0.5, begin_step=0, end_step=None, frequency=50, power=3, verbose=0,
                 in_graph=True):
        super().__init__()
        self.in_graph = in_graph
        self._mask_vars, self._old_constraints = {}, {}
        self.target, self.begin, self.end, self.freq, self.power, self.verbose = (
            target_sparsity, begin_step, end_step, frequency, power, verbose)
        self.masks = {}
        self.step = 0

    # -------------------------------------------------------------- helpers
    def _targets(self):
        out = {}
        for layer in self.model._flatten_layers(include_self=False):
            k = getattr(layer, 'kernel', None)
            if k is None or not isinstance(k, keras.Variable):
                continue
            t = self.target.get(layer.name) if isinstance(self.target, dict) else self.target
            if t:
                out[layer.name] = (layer, k, float(t))
        return out

    def _apply(self):
        for name, (layer, k, _) in self.layers.items():
            if self.in_graph:
                self._mask_vars[name].assign(self.masks[name])
            k.assign(k * self.masks[name])

    def _update_masks(self):
        for name, (layer, k, t) in self.layers.items():
            s = polynomial_sparsity(self.step, t, self.begin, self.end, self.power)
            w = np.abs(ops.convert_to_numpy(k)) * self.masks[name]
            n_prune = int(np.floor(s * w.size))
            if n_prune <= int(w.size - self.masks[name].sum()):
                continue
            thr_idx = np.argsort(w, axis=None, kind='stable')[:n_prune]  # deterministic tie-breaking
            m = np.ones(w.size, np.float32)
            m[thr_idx] = 0.0
            self.masks[name] = m.reshape(w.shape) * self.masks[name]

    # -------------------------------------------------------------- keras hooks
    def on_train_begin(self, logs=None):
        self.layers = self._targets()
        for name, (layer, k, _) in self.layers.items():
            self.masks.setdefault(name, np.ones(tuple(k.shape), np.float32))
            if self.in_graph:
                mv = self._mask_vars.get(name)
                if mv is None:
                    mv = self._mask_vars[name] = keras.Variable(self.masks[name], trainable=False, name=f'{name}_prune_mask')
                old = self._old_constraints[name] = k.constraint
                k.constraint = (lambda w, mv=mv, old=old: (old(w) if old is not None else w) * mv)
        if self.in_graph:
            self.model.make_train_function(force=True)  # re-trace so the constraint is in the graph
        if self.end is None:
            total = (self.params.get('epochs') or 1) * (self.params.get('steps') or 1)
            self.end = int(0.7 * total)
        self._apply()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step >= self.begin and (self.step - self.begin) % self.freq == 0 and self.step <= self.end + self.freq:
            self._update_masks()
            self._apply()
        elif not self.in_graph:
            self._apply()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs['sparsity'] = self.sparsity()
        if self.verbose:
            print(f' sparsity={self.sparsity():.3f}')

    def on_train_end(self, logs=None):
        self._update_masks()
        self._apply()
        for name, (layer, k, _) in self.layers.items():
            if name in self._old_constraints:
                k.constraint = self._old_constraints.pop(name)

    def sparsity(self):
        tot = sum(m.size for m in self.masks.values())
        return float(sum((m == 0).sum() for m in self.masks.values()) / max(1, tot))


def kernel_sparsity(model):
    """Fraction of exactly-zero entries in each layer's *quantized* kernel (what the firmware sees)."""
    out = {}
    for layer in model._flatten_layers(include_self=False):
        if hasattr(layer, 'qkernel'):
            q = ops.convert_to_numpy(layer.qkernel)
            out[layer.name] = float((q == 0).mean())
    return out
