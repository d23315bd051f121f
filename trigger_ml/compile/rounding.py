"""Exact round-half-to-even (hgq2 ``RND_CONV``, QKeras/QONNX rounding) in da4ml 0.5's traced graph.

da4ml 0.5 rounds only TRN (floor) and RND (floor(x + 1/2)): ``FixedVariable.quantize`` asserts
``round_mode in ('TRN', 'RND')`` (da4ml/trace/fixed_variable.py:645). Its overflow handling is complete:
WRAP is a bit slice, SAT and SAT_SYM clamp with ``max_of``/``min_of``, msb-muxes on the sign of a
difference (fixed_variable.py:658-665). So only the rounding is added here; overflow then runs through
da4ml's own code on the rounded value (hgq2 clips before rounding: the same, the bounds being on the grid).

x has step 2^-F, the target grid is 2^-f with f < F, h = 2^-(f+1), s = x + h (RND's own adder)::

    RND(x)      = trunc_f(s)
    tie         = (s mod 2^-f) == 0              (the bits of x below 2^-f are 100..0)
    RND_CONV(x) = tie ? trunc_(f-1)(s) : trunc_f(s)

On a tie s = (n+1) 2^-f, and the even one of n, n+1 is trunc_(f-1)(s) (the 2^-f bit cleared). ``tie``
is the sign of (s mod 2^-f) - 2^-F, negative only when those F-f bits are all zero. Everything is an op
da4ml already traces, interprets (``comb.predict``) and writes as Verilog: bit slices (``wrap``), one
(F-f+1)-bit constant add, one ``msb_mux`` whose inputs differ only in their last bit ("mux", default).
``method="carry"`` instead computes trunc_f(x + h - 2^-F + b 2^-F) with b the 2^-f bit of x (a carry-in
of b); it is as exact but costs more in da4ml's estimate (a variable add).

Use (trigger_ml.compile.rtl.trace does)::

    with exact_rounding():
        inp, out = trace_model(model, HWConfig(1, -1, -1), inputs_kif=(1, 3, 6))

Proven exact (tests/compile/test_rounding.py, and the prototype's sweep: 353,512 values with 87,072
ties, 0 mismatches between hgq2 in float64, da4ml's interpreter and Verilator); cost on a QKeras MLP
+3.4% da4ml LUT estimate, +1.9% yosys LUT, +2 adder levels (docs/research/rnd-conv.md).

The patch leaves TRN and RND untouched; it adds ``RND_CONV`` and the inference meaning of hgq2's
stochastic ``S_RND``/``S_RND_CONV`` (deterministic outside training). A model input of unspecified
precision (``inputs_kif=None``) cannot be rounded half to even exactly (a tie depends on every lower
bit), so that raises: declare the input format.

Within the same block, a constant bound of ``max_of``/``min_of`` (SAT clamps, ReLU caps) is made with
factor 1: da4ml 0.5.2 makes it with the variable's own power-of-two factor, which shrinks with every
dense layer (2^-41 after four of them), and at such a factor the constant's unscaled step comes out
wrong in the traced graph. Found on an imported 4-layer MLP's softmax: the exp table's SAT input
clamp min_of(16 - 2^-8) returned twice its input on 200 of 1,009 events in da4ml's interpreter and
the RTL alike (tests/compile/test_rounding.py).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from decimal import Decimal
from math import floor

from da4ml.trace.fixed_variable import FixedVariable, FixedVariableInput

__all__ = ["exact_rounding", "round_half_even"]

METHODS = ("mux", "carry")
_ORIG = {
    "var": FixedVariable.quantize,
    "inp": FixedVariableInput.quantize,
    "max_of": FixedVariable.max_of,
    "min_of": FixedVariable.min_of,
}
_state = {"depth": 0, "method": "mux"}
_lock = threading.Lock()


def _const_rne(val: Decimal, f: int) -> Decimal:
    """Round half to even of a constant onto the 2^-f grid (exact, Decimal)."""
    scaled = val * Decimal(2) ** f
    n = floor(scaled)
    rem = scaled - n
    if rem > Decimal("0.5") or (rem == Decimal("0.5") and n % 2):
        n += 1
    return Decimal(n) * Decimal(2) ** -f


def round_half_even(v: FixedVariable, f: int, method: str = "mux") -> FixedVariable:
    """v rounded half to even onto the 2^-f grid, range grown as needed (no overflow handling)."""
    f = int(f)
    _, _, F = v.kif
    if f >= F:  # already on the grid
        return v
    if v.low == v.high:
        return FixedVariable.from_const(_const_rne(v.low, f), hwconf=v.hwconf, _factor=1)
    trn = _ORIG["var"]
    eps = Decimal(2) ** -F
    if method == "carry":
        b = trn(v, 0, 1 - f, f, "WRAP", "TRN")  # the 2^-f bit of x, as {0, 2^-f}
        s = v + b * 2.0 ** (f - F) + (Decimal(2) ** (-f - 1) - eps)
        k, i, _ = s.kif
        return trn(s, k, i, f, "WRAP", "TRN")
    if method != "mux":
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    s = v + 2.0 ** (-f - 1)
    k, i, _ = s.kif  # s's own range: the slices below never wrap its integer part
    up = trn(s, k, i, f, "WRAP", "TRN")  # floor(x 2^f + 1/2) 2^-f: the RND result
    even = trn(s, k, i, f - 1, "WRAP", "TRN")  # the same with its 2^-f bit cleared
    low = trn(s, 0, -f, F, "WRAP", "TRN")  # s mod 2^-f, unsigned, F-f bits
    if low.low == low.high:  # the remainder is a constant: the tie is known when tracing
        return even if low.low == 0 else up
    if low._factor > 0:  # a slice (always, unless the slice was a no-op on a negatively scaled s)
        return (low - eps).msb_mux(even, up)  # the key is < 0 exactly on a tie
    return (-low).msb_mux(up, even)  # -low <= 0, and < 0 exactly when not a tie


def _mode(round_mode: str) -> str:
    round_mode = round_mode.upper()
    return round_mode[2:] if round_mode.startswith("S_") else round_mode  # stochastic only in training


def _quantize(self, k, i, f, overflow_mode="WRAP", round_mode="TRN"):
    round_mode = _mode(round_mode)
    if round_mode != "RND_CONV":
        return _ORIG["var"](self, k, i, f, overflow_mode, round_mode)
    k, i, f = int(k), int(i), int(f)
    if k + i + f <= 0:  # as da4ml and hgq2: a zero-width quantizer gives 0
        return FixedVariable(0, 0, 1, hwconf=self.hwconf, opr="const")
    return _ORIG["var"](round_half_even(self, f, _state["method"]), k, i, f, overflow_mode, "TRN")


def _quantize_input(self, k, i, f, overflow_mode="WRAP", round_mode="TRN"):
    round_mode = _mode(round_mode)
    if round_mode == "RND_CONV" and k + i + f > 0:
        raise NotImplementedError(
            "round half to even of a model input of unspecified precision cannot be exact "
            "(a tie depends on every lower bit): trace with inputs_kif"
        )
    return _ORIG["inp"](self, k, i, f, overflow_mode, round_mode)


def _bound(other, like: FixedVariable):
    """A constant bound as a factor-1 constant (infinities and variables unchanged)."""
    if isinstance(other, FixedVariable) or other in (float("inf"), -float("inf")):
        return other
    return FixedVariable.from_const(other, hwconf=like.hwconf, _factor=1)


def _max_of(self, other):
    return _ORIG["max_of"](self, _bound(other, self))


def _min_of(self, other):
    return _ORIG["min_of"](self, _bound(other, self))


def install(method: str = "mux") -> None:
    """Patch FixedVariable(Input).quantize process-wide (idempotent; TRN and RND unchanged)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    _state["method"] = method
    FixedVariable.quantize = _quantize
    FixedVariableInput.quantize = _quantize_input
    FixedVariable.max_of = _max_of
    FixedVariable.min_of = _min_of


def uninstall() -> None:
    FixedVariable.quantize = _ORIG["var"]
    FixedVariableInput.quantize = _ORIG["inp"]
    FixedVariable.max_of = _ORIG["max_of"]
    FixedVariable.min_of = _ORIG["min_of"]


@contextmanager
def exact_rounding(method: str = "mux"):
    """RND_CONV-capable da4ml tracing within the block (nestable; thread-safe install/uninstall)."""
    with _lock:
        if _state["depth"] == 0:
            install(method)
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                uninstall()
