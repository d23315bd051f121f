"""hls4ml 1.3.0: hgq2 model -> Vitis io_parallel (Latency | distributed_arithmetic), bit-exact check.

usage: python hls4ml_flow.py <mlp|cnn|ae> <latency|distributed_arithmetic> [--trace]
"""
import json
import sys

import common  # noqa: F401  (env first)
from common import OUT, Timer, get_model

import numpy as np

name, strategy = sys.argv[1], sys.argv[2]
do_trace = '--trace' in sys.argv
times = {}

model = get_model(name)
vec = np.load(OUT / f'{name}_vectors.npz')
x, y_keras = vec['x'], vec['y']

import hls4ml  # noqa: E402

# --- config -----------------------------------------------------------------
# Precision is a dummy: with hgq2 models hls4ml's BitExact pass (auto-enabled because the
# parsed graph contains FixedPointQuantizer nodes) derives every precision from the model.
# 'ap_fixed<1,0>' (as in hls4ml's own hgq2 tests) makes any layer NOT covered by it obvious.
with Timer('config_from_keras_model', times):
    hls_config = hls4ml.utils.config_from_keras_model(
        model, granularity='name', backend='Vitis', default_precision='fixed<1,0>'
    )
hls_config['Model']['Strategy'] = strategy  # 'Latency' | 'distributed_arithmetic' (alias 'da')
hls_config['Model']['ReuseFactor'] = 1  # DA requires RF=1
for lname in hls_config['LayerName']:
    hls_config['LayerName'][lname]['Trace'] = do_trace
    hls_config['LayerName'][lname].pop('Strategy', None)  # inherit model-level strategy
    # config_from_keras_model writes ParallelizationFactor=1 for convs, which overrides hgq2's
    # pf (= #output pixels, fully parallel) -> drop it so the layer keeps the model's value
    hls_config['LayerName'][lname].pop('ParallelizationFactor', None)

odir = OUT / f'hls_{name}_{strategy}'
with Timer('convert', times):
    hls_model = hls4ml.converters.convert_from_keras_model(
        model,
        output_dir=str(odir),
        project_name='myproject',
        backend='Vitis',
        io_type='io_parallel',
        hls_config=hls_config,
        part='xcvu13p-flga2577-2-e',
        clock_period=5,
        bit_exact=True,  # None => auto (on when FixedPointQuantizer present)
    )

# --- per-layer precisions ----------------------------------------------------
prec = {}
for layer in hls_model.get_layers():
    entry = {'class': layer.class_name, 'strategy': layer.get_attr('strategy')}
    entry['result'] = str(layer.get_output_variable().type.precision)
    for wname, w in layer.weights.items():
        entry[f'w:{wname}'] = str(w.type.precision)
    for k, v in layer.attributes.items():  # accum_t, bias_t, weight_t, table_t, ...
        if k.endswith('_t') and hasattr(v, 'precision'):
            entry[k] = str(v.precision)
    if layer.get_attr('da_kernel_cost') is not None:  # set by vivado:distributed_arithmetic pass
        entry['da_kernel_cost(LUT est)'] = float(layer.get_attr('da_kernel_cost'))
    prec[layer.name] = entry
    print(f'{layer.name:22s} {layer.class_name:20s} ' + ' '.join(f'{k}={v}' for k, v in entry.items() if k != 'class'))

with Timer('compile(write+g++)', times):
    hls_model.compile()

print('C-sim library:', hls_model._top_function_lib._name)
with Timer('predict', times):
    y_hls = np.asarray(hls_model.predict(np.ascontiguousarray(x))).reshape(y_keras.shape)
y_hls64 = np.asarray(hls_model.predict(np.ascontiguousarray(x.astype(np.float64)))).reshape(y_keras.shape)

n_eq = int(np.sum(y_hls == y_keras))
y_ref64 = np.load(OUT / f'{name}_ref64.npy')  # float64 Keras reference (see make_ref64.py)
n_eq64 = int(np.sum(y_hls64 == y_ref64))
print(f'RESULT {name} {strategy}: hls.predict(float32 x) == keras(f32): {n_eq}/{y_keras.size}; '
      f'hls.predict(float64 x) == keras(f64): {n_eq64}/{y_keras.size}')
if n_eq != y_keras.size:
    bad = np.where(y_hls != y_keras)[0][:5]
    print(' first mismatches', bad, y_keras.ravel()[bad], y_hls.ravel()[bad])

res = {'name': name, 'strategy': strategy, 'n_equal': n_eq, 'n_equal_f64': n_eq64, 'total': int(y_keras.size),
       'times': times, 'precisions': prec, 'hls_config': hls_config,
       'lib': hls_model._top_function_lib._name}

if do_trace:
    # hls_model.trace(x) recompiles with tracing on and returns (y, {layer_name: array})
    with Timer('trace', times):
        _, hls_trace = hls_model.trace(np.ascontiguousarray(x[:200]))
    # Keras side: intermediate-output submodel (equivalent of hls4ml.model.profiling.get_ymodel_keras,
    # which we must not import: it imports the `qkeras` shim).
    import keras

    kl = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    xs = x[:200]
    k_post = dict(zip([l.name for l in kl], keras.Model(model.inputs, [l.output for l in kl]).predict(xs, verbose=0)))
    # pre-activation outputs (same trick as hls4ml.model.profiling.get_ymodel_keras)
    k_pre = {}
    for l in kl:
        act = getattr(l, 'activation', None)
        if act is not None and act is not keras.activations.linear:
            l.activation = keras.activations.linear
            k_pre[l.name] = keras.Model(model.inputs, l.output).predict(xs, verbose=0)
            l.activation = act
    hls_layers = {l.name: l for l in hls_model.get_layers()}
    cmp = {}
    for lname, arr in hls_trace.items():
        kname = lname
        ref = None
        if lname in k_pre:
            ref = k_pre[lname]  # hls 'd1' = Dense without activation
        elif lname in k_post:
            ref = k_post[lname]
        else:
            base = lname.rsplit('_', 1)[0]  # hls 'd1_relu' = keras 'd1' output
            ref = k_post.get(base)
            kname = base
        if ref is None:
            cmp[lname] = f'(no keras counterpart) shape={arr.shape}'
            continue
        ref = ref.reshape(arr.shape)
        p = hls_layers[lname].get_output_variable().type.precision
        lsb = 2.0 ** -(p.width - p.integer)
        maxdiff = float(np.max(np.abs(ref - arr)))
        cmp[lname] = f'vs keras {kname}: exact {int(np.sum(ref == arr))}/{arr.size}, max|diff|={maxdiff:.3g} ({maxdiff / lsb:.2f} LSB of {p})'
    print('per-layer trace compare (exact/total):', json.dumps(cmp, indent=1))
    res['trace_cmp'] = cmp

json.dump(res, open(OUT / f'res_hls_{name}_{strategy}.json', 'w'), indent=1, default=str)
print(json.dumps(times))
