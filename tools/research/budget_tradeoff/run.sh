#!/bin/bash
# run scan points sequentially: each line of the argument file is "MODEL BITS SPARSITY [LAYERS]"
export OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 TRIGGER_ML_CACHE=/work/to-cache
export NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES=
cd /work/tradeoff/scan
while read -r m b s l sd; do
  [ -z "$m" ] && continue
  echo "=== $m $b $s $l $(date +%T)"
  nice -n 19 /work/to-venv/bin/python point.py $m $b $s $l $sd > logs/${m}_b${b}_s${s}_${l}${sd}.log 2>&1
  echo "rc=$? $(date +%T)"; tail -3 logs/${m}_b${b}_s${s}_${l}${sd}.log | cut -c1-200
done < "$1"
