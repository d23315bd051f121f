"""Build a standalone C++ C-simulation runner for an hls4ml (Vitis, io_parallel) project with g++ only
(no Vitis, no Python at run time) and run it on a text vector file.

The runner #includes the project's own myproject_bridge.cpp (plain C ABI:
  void myproject_double(double *in0, [double *in1, ...], double *out0, ...);
which converts double -> input_t (ap_fixed) -> myproject() -> result_t -> double), so it has the
same conversion semantics as hls_model.predict(float64 array).

usage: python standalone_csim.py <hls_project_dir> <n_in> <n_out> <model_name>
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MAIN = r'''
// standalone csim runner: reads whitespace-separated samples (SA_N_IN values per sample) from argv[1],
// writes SA_N_OUT values per line (%.17g, exact for <=53-bit fixed point) to argv[2].
#include "myproject_bridge.cpp"
#include <cstdio>
#include <vector>
int main(int argc, char **argv) {
    if (argc < 3) { std::fprintf(stderr, "usage: %s in.txt out.txt\n", argv[0]); return 2; }
    FILE *fi = std::fopen(argv[1], "r"), *fo = std::fopen(argv[2], "w");
    if (!fi || !fo) { std::perror("fopen"); return 1; }
    std::vector<double> in(SA_N_IN), out(SA_N_OUT);
    long n = 0;
    while (true) {
        int ok = 1;
        for (int i = 0; i < SA_N_IN && ok; i++) ok = (std::fscanf(fi, "%lf", &in[i]) == 1);
        if (!ok) break;
        myproject_double(in.data(), out.data());
        for (int j = 0; j < SA_N_OUT; j++) std::fprintf(fo, j ? " %.17g" : "%.17g", out[j]);
        std::fputc('\n', fo);
        n++;
    }
    std::fclose(fi); std::fclose(fo);
    std::fprintf(stderr, "processed %ld samples\n", n);
    return 0;
}
'''


def build_and_run(prj: Path, n_in: int, n_out: int, x: np.ndarray, opt='-O2'):
    prj = prj.resolve()
    (prj / 'standalone_main.cpp').write_text(MAIN)
    wdir = f'"{prj}/firmware/weights"'
    # same essentials as build_lib.sh (-O3 -fPIC -std=c++23|c++11 -fno-gnu-unique -Ifirmware/ap_types
    # -DWEIGHTS_DIR=...), minus -fPIC/-shared; myproject.cpp loads weights/*.txt at run time
    # unless __SYNTHESIS__ is defined.
    cmd = ['g++', opt, '-std=c++17', '-Ifirmware/ap_types', '-Ifirmware', f'-DWEIGHTS_DIR={wdir}',
           f'-DSA_N_IN={n_in}', f'-DSA_N_OUT={n_out}', 'standalone_main.cpp', 'firmware/myproject.cpp', '-o', 'csim_runner']
    print(' '.join(cmd))
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=prj, check=True)
    t_build = time.perf_counter() - t0
    np.savetxt(prj / 'vectors_in.txt', x.reshape(len(x), -1), fmt='%.17g')
    t0 = time.perf_counter()
    subprocess.run(['./csim_runner', 'vectors_in.txt', 'vectors_out.txt'], cwd=prj, check=True)
    t_run = time.perf_counter() - t0
    y = np.loadtxt(prj / 'vectors_out.txt', ndmin=2)
    return y, t_build, t_run


if __name__ == '__main__':
    prj, name = Path(sys.argv[1]), sys.argv[2]
    here = Path(__file__).resolve().parent
    vec = np.load(here / 'out' / f'{name}_vectors.npz')
    ref64 = np.load(here / 'out' / f'{name}_ref64.npy')
    x = vec['x']
    n_in, n_out = int(np.prod(x.shape[1:])), int(np.prod(ref64.shape[1:]))
    y, tb, tr = build_and_run(prj, n_in, n_out, x)
    y = y.reshape(ref64.shape)
    print(f'RESULT standalone {prj.name}: == keras(f64) {int(np.sum(y == ref64))}/{ref64.size}  '
          f'build {tb:.1f}s run {tr:.2f}s')
