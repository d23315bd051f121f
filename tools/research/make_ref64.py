"""Exact float64 Keras reference for the bit-exactness checks.

hgq2/Keras compute in float32 by default. As soon as a pre-quantizer value needs >24
significant bits (e.g. 81 uint10 inputs x 8-bit weights + a bias quantized with f=17..31)
the float32 Keras value is rounded and can land on the other side of a RND/TRN boundary:
then the *firmware* (exact fixed point) and Keras-float32 legitimately disagree.

Recipe that gives an exact reference: set the GLOBAL dtype policy to float64 *before*
re-instantiating the model from its config (hgq's Quantizer sub-layers are created in
__init__ with the global policy, so merely editing the saved per-layer 'dtype' entries
is NOT enough: the quantizers stay float32), then copy the weights.
"""
import json

import common  # noqa: F401
import keras
import numpy as np

import hgq  # noqa: F401
from common import OUT


def to_float64(model32):
    old = keras.config.dtype_policy().name, keras.config.floatx()
    keras.config.set_floatx('float64')
    keras.config.set_dtype_policy('float64')
    try:
        cfg = json.loads(json.dumps(model32.get_config()).replace('"float32"', '"float64"'))
        m64 = keras.Model.from_config(cfg)
        m64.set_weights(model32.get_weights())
    finally:
        keras.config.set_dtype_policy(old[0])
        keras.config.set_floatx(old[1])
    return m64


if __name__ == '__main__':
    for name in ['mlp', 'cnn', 'ae']:
        v = np.load(OUT / f'{name}_vectors.npz')
        m32 = keras.models.load_model(OUT / f'{name}.keras', compile=False)
        m64 = to_float64(m32)
        y64 = np.asarray(m64.predict(v['x'].astype(np.float64), verbose=0, batch_size=4096), dtype=np.float64)
        print(name, 'keras f32 == keras f64:', int(np.sum(v['y'] == y64)), '/', y64.size)
        if name == 'ae':  # independent int64 check of the score given the f64 diff output
            d = keras.Model(m64.inputs, m64.get_layer('diff').output).predict(v['x'].astype(np.float64), verbose=0)
            assert np.all(d == np.round(d))
            ex = (d.astype(np.int64) ** 2).sum(1, keepdims=True)
            print('  int64(score from f64 diff) == keras f64:', int(np.sum(ex == y64)), ' max score', ex.max(),
                  '(2^%.1f)' % np.log2(ex.max()))
        np.save(OUT / f'{name}_ref64.npy', y64)
