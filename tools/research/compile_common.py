"""Shared helpers: env setup, the three tiny hgq2-native models, test-vector generation.

Import this module FIRST (it sets TF thread env vars before TF is imported).
Never import qkeras / hls4ml.model.profiling in the same process (the venv's `qkeras`
package is hgq2's compat shim and hls4ml.model.profiling imports it).
"""
import os

os.environ.setdefault('TF_NUM_INTEROP_THREADS', '1')
os.environ.setdefault('TF_NUM_INTRAOP_THREADS', '1')
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / 'out'
OUT.mkdir(exist_ok=True)

# Verilator shim dir (see vbin/verilator); prepend so da4ml's `make` finds `verilator`.
VBIN = HERE / 'vbin'
if str(VBIN) not in os.environ.get('PATH', '').split(':'):
    os.environ['PATH'] = f'{VBIN}:{os.environ["PATH"]}'

# Input grids: (k, i, f) of the *unsigned* input features
INPUT_KIF = {
    'mlp': (0, 6, 6),  # ufixed<12,6>: 0 .. 64-2^-6
    'cnn': (0, 10, 0),  # uint10
    'ae': (0, 10, 0),  # uint10
}
INPUT_SHAPE = {'mlp': (11,), 'cnn': (9, 9, 1), 'ae': (81,)}


class Timer:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *a):
        self.dt = time.perf_counter() - self.t0
        self.log[self.name] = round(self.dt, 2)
        print(f'[time] {self.name}: {self.dt:.2f}s', flush=True)


def grid_data(name, n=2000, seed=0):
    """n samples on the exact input grid, first rows are the extremes."""
    k, i, f = INPUT_KIF[name]
    shape = INPUT_SHAPE[name]
    rng = np.random.default_rng(seed)
    nmax = 2 ** (i + f) - 1  # unsigned integer code max
    codes = rng.integers(0, nmax + 1, size=(n,) + shape)
    codes[0] = 0
    codes[1] = nmax
    flat = codes[2].reshape(-1)
    flat[:] = np.where(np.arange(flat.size) % 2 == 0, nmax, 0)  # checkerboard
    codes[3] = nmax - codes[2]
    codes[4] = 1  # one LSB everywhere
    codes[5] = nmax - 1
    # sparse rows (realistic for detector windows): mostly zeros, few hot cells
    m = rng.random((n // 4,) + shape) < 0.1
    codes[6 : 6 + n // 4] = np.where(m, codes[6 : 6 + n // 4], 0)
    return (codes * 2.0**-f).astype(np.float32)


def build(name):
    import keras
    from hgq.config import QuantizerConfig, QuantizerConfigScope
    from hgq.layers import QConv2D, QDense, QMaxPool2D, QMultiply, QSubtract

    k, i, f = INPUT_KIF[name]
    # Frozen, exactly-representable input quantizer: unsigned, fixed (i, f), never retraced.
    in_conf = QuantizerConfig('kif', 'datalane', k0=k, i0=i, f0=f, overflow_mode='WRAP', trainable=False)
    keras.utils.set_random_seed({'mlp': 1, 'cnn': 2, 'ae': 3}[name])

    if name == 'mlp':
        inp = keras.Input(INPUT_SHAPE[name])
        x = QDense(16, activation='relu', iq_conf=in_conf, name='d1')(inp)
        x = QDense(8, activation='relu', name='d2')(x)
        out = QDense(1, name='logit')(x)
        return keras.Model(inp, out, name='mlp')

    if name == 'cnn':
        inp = keras.Input(INPUT_SHAPE[name])
        x = QConv2D(4, (3, 3), activation='relu', iq_conf=in_conf, name='conv')(inp)  # 7x7x4
        x = QMaxPool2D((2, 2), name='pool')(x)  # 3x3x4
        x = keras.layers.Flatten(name='flat')(x)
        out = QDense(1, name='logit')(x)
        return keras.Model(inp, out, name='cnn')

    if name == 'ae':
        inp = keras.Input(INPUT_SHAPE[name])
        x = QDense(16, activation='relu', iq_conf=in_conf, name='enc1')(inp)
        x = QDense(8, activation='relu', name='enc2')(x)
        x = QDense(16, activation='relu', name='dec1')(x)
        rec = QDense(81, name='dec2')(x)
        # reconstruction quantized to the input grid (uint10, saturating) -> diff is int11
        rec_conf = QuantizerConfig('kif', 'datalane', k0=0, i0=10, f0=0, overflow_mode='SAT', trainable=False)
        d = QSubtract(iq_confs=[in_conf, rec_conf], name='diff')([inp, rec])
        # diff is an exact signed integer: no extra quantizer needed before squaring / summing
        sq = QMultiply(enable_iq=False, name='sq')([d, d])
        ones = QuantizerConfig('kif', 'weight', k0=0, i0=1, f0=0, trainable=False)
        score = QDense(
            1, use_bias=False, kernel_initializer='ones', kq_conf=ones, enable_iq=False, trainable=False, name='score'
        )(sq)
        return keras.Model(inp, score, name='ae')
    raise KeyError(name)


def init_ranges(model, name, seed=1):
    """1-epoch fit on random on-grid data + trace_minmax so WRAP quantizer ranges are set."""
    import keras
    from hgq.utils import trace_minmax

    x = grid_data(name, 1024, seed=seed)
    y = np.zeros((len(x), 1), np.float32)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss='mse')
    model.fit(x, y, epochs=1, batch_size=128, verbose=0)
    trace_minmax(model, x, batch_size=1024)  # sets i (and k) of all trainable WRAP quantizers
    return model


def get_model(name, rebuild=False):
    """Build+init once, then cache as .keras; later processes just load it."""
    import keras

    import hgq  # noqa: F401  (registers hgq serializables)

    path = OUT / f'{name}.keras'
    if path.exists() and not rebuild:
        return keras.models.load_model(path, compile=False)
    model = build(name)
    init_ranges(model, name)
    model.save(path)
    return keras.models.load_model(path, compile=False)


def keras_ref(model, x):
    return np.asarray(model.predict(x, batch_size=4096, verbose=0))
