"""da4ml 0.5.2: hgq2 Keras model -> traced CombLogic -> DAIS software predict -> pipelined Verilog
-> Verilator RTL simulation predict; exactness vs Keras (float32 and exact float64 reference).

usage: python da4ml_flow.py <mlp|cnn|ae> [latency_cutoff=5] [--no-rtl]
Needs vbin/verilator shim on PATH (common.py prepends it).
"""
import json
import shutil
import sys

import common  # noqa: F401  (env + PATH first)
from common import OUT, Timer, get_model

import numpy as np

name = sys.argv[1]
lat_cut = float(sys.argv[2]) if len(sys.argv) > 2 and not sys.argv[2].startswith('--') else 5.0
do_rtl = '--no-rtl' not in sys.argv
# --free-input: leave the trace input unquantized (the model's first iq then needs 1 extra LSB to
# implement RND); default: declare the known input grid via inputs_kif (cheaper, same results on-grid)
free_input = '--free-input' in sys.argv
times = {}

model = get_model(name)
vec = np.load(OUT / f'{name}_vectors.npz')
x, y_keras = vec['x'], vec['y']
y_ref64 = np.load(OUT / f'{name}_ref64.npy')

from da4ml.codegen import VerilogModel  # noqa: E402
from da4ml.converter import trace_model  # noqa: E402
from da4ml.trace import HWConfig, comb_trace  # noqa: E402

# 1) symbolic trace of the Keras graph (each hgq layer replayed on FixedVariableArray), then
#    flatten into a CombLogic (list of adder/shift/mux/... ops). First call in a fresh env JITs
#    numba code (~2 min); cached afterwards.
with Timer('trace_model', times):
    inp, out = trace_model(model, HWConfig(1, -1, -1), solver_options={'hard_dc': 2},
                           inputs_kif=None if free_input else common.INPUT_KIF[name])
with Timer('comb_trace', times):
    comb = comb_trace(inp, out, keep_dead_inputs=True)  # keep shape[0] == #model inputs
print(comb)  # Solution([n_in -> n_out], cost=<LUT estimate>, latency=<min>-<max>)
assert comb.shape == (int(np.prod(x.shape[1:])), int(np.prod(y_keras.shape[1:]))), comb.shape
print('input kifs (k,i,f) max:', comb.inp_kifs.max(axis=1), ' output kifs:', comb.out_kifs.T.tolist()[:3])

# 2) software model: C++ DAIS interpreter (exact integer arithmetic), float64 out
with Timer('comb.predict', times):
    y_sw = comb.predict(x.reshape(len(x), -1), n_threads=1)
y_sw = y_sw.reshape(y_keras.shape)
n_sw32 = int(np.sum(y_sw == y_keras))
n_sw64 = int(np.sum(y_sw == y_ref64))
print(f'RESULT {name} da4ml-sw: == keras(f32) {n_sw32}/{y_keras.size}; == keras(f64) {n_sw64}/{y_keras.size}')

# 3) Verilog project, pipelined: latency_cutoff is in da4ml's delay units (~ adder levels);
#    clock_period only goes into the .xdc/.sdc constraints.
prj = OUT / f'da4ml_{name}{"_free" if free_input else ""}'
shutil.rmtree(prj, ignore_errors=True)
rtl = VerilogModel(comb, 'model', prj, latency_cutoff=lat_cut, clock_period=5.0, clock_uncertainty=0.1,
                   part_name='xcvu13p-flga2577-2-e')
with Timer('verilog_write', times):
    rtl.write()
print(rtl)  # Top module, N stages @ max_delay, "Estimated cost: X LUTs, Y FFs"
meta = json.load(open(prj / 'metadata.json'))
print('metadata.json:', meta)
est = {'cost_LUT': comb.cost, 'comb_latency': comb.latency, 'stages': len(rtl._pipe.solutions) if rtl._pipe else 0,
       'reg_bits_FF': rtl._pipe.reg_bits if rtl._pipe else 0}
print('estimates:', est)

res = {'name': name, 'latency_cutoff': lat_cut, 'free_input': free_input, 'sw_eq_f32': n_sw32, 'sw_eq_f64': n_sw64, 'total': int(y_keras.size),
       'estimates': est, 'times': times}

# 4) Verilator build + RTL sim predict (loads lib<prj>_wrapper_<uuid>.so via ctypes)
if do_rtl:
    with Timer('verilator_build(compile)', times):
        rtl._compile(nproc=1, openmp=False, o3=False)  # compile() == write() + _compile()
    with Timer('rtl.predict', times):
        y_rtl = rtl.predict(x.reshape(len(x), -1), n_threads=1)
    y_rtl = np.asarray(y_rtl).reshape(y_keras.shape)
    res['rtl_eq_sw'] = int(np.sum(y_rtl == y_sw))
    res['rtl_eq_f32'] = int(np.sum(y_rtl == y_keras))
    res['rtl_eq_f64'] = int(np.sum(y_rtl == y_ref64))
    print(f'RESULT {name} da4ml-rtl: == sw {res["rtl_eq_sw"]}, == keras(f32) {res["rtl_eq_f32"]}, '
          f'== keras(f64) {res["rtl_eq_f64"]} /{y_keras.size}')
json.dump(res, open(OUT / f'res_da4ml_{name}{"_free" if free_input else ""}.json', 'w'), indent=1, default=float)
print(json.dumps(times))
