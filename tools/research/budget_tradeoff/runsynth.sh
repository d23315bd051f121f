#!/bin/bash
export OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 TRIGGER_ML_CACHE=/work/to-cache
export NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES=
cd /work/tradeoff/scan
for t in "$@"; do echo "=== synth $t $(date +%T)"; nice -n 19 /work/to-venv/bin/python synth.py $t > logs/synth_$t.log 2>&1; echo "rc=$? $(date +%T)"; done
