"""da4ml's pipelining driven by the delay model, in nanoseconds instead of adder levels.

da4ml places a register wherever an operation's ready time (`Op.latency`, in whatever unit the
trace used) would cross a multiple of `latency_cutoff`. Its own units are adder levels (or
carry blocks): they ignore the LUT level and the routed hop every adder costs, and the relu
and mux levels between adders. Here every operation's ready time is recomputed in ns from the
family's figures (`fpga.Delays`) with da4ml's own rule (an operation that would cross a
stage boundary starts at the boundary), and da4ml's `to_pipeline` cuts at the stage budget:
clock x (1 - margin) - uncertainty - clock-to-Q - setup - the hop into the next register.
Without retiming, so no stage's modelled delay exceeds the budget.
"""

from __future__ import annotations

import logging
from math import ceil
from typing import Any

from trigger_ml.errors import UnsupportedError
from trigger_ml.fpga import Delays

log = logging.getLogger(__name__)


def _width(qint) -> int:
    from da4ml.cmvm.types import _minimal_kif

    k, i, f = _minimal_kif(qint)
    return max(1, int(k) + int(i) + int(f))


def op_delay(op, ops, fam: Delays) -> float:
    """Modelled delay (ns) of one da4ml operation, from its operands' ready time to its own."""
    code, w = op.opcode, _width(op.qint)
    lut = fam.lut_level_ns()
    if code in (-1, 5, 3):  # input, constant, quantize (bit selection: wiring)
        return 0.0
    if code in (0, 1, 4, -3):  # add, subtract, add a constant, negate-and-quantize
        return fam.adder_ns(w)
    if code == 2:  # relu: one AND with the sign bit per output bit
        return lut
    if code == -2:  # relu(-x): a negation, then the AND
        return fam.adder_ns(w) + lut
    if code == 6:  # MSB mux: one LUT level on the select bit's (high fan-out) net
        return lut
    if code == -6:
        return fam.adder_ns(w) + lut
    if code == 7:  # multiplication: a DSP block when it fits one, else shift-and-add
        b0, b1 = sorted((_width(ops[op.id0].qint), _width(ops[op.id1].qint)))
        if fam.t_dsp is not None and b0 <= fam.dsp_widths[0] and b1 <= fam.dsp_widths[1]:
            return fam.t_net + fam.t_dsp
        return b0 * fam.adder_ns(w)
    if code == 8:  # lookup table: a LUT, plus a mux level per extra input bit
        b_in = _width(ops[op.id0].qint)
        return lut + max(0, b_in - fam.lut_inputs) * (fam.t_mux + fam.t_net)
    raise UnsupportedError(
        f"the timing model has no delay for da4ml opcode {code}", "add it to trigger_ml/timing/pipeline.py:op_delay"
    )


def _operands(op) -> list[int]:
    if op.opcode in (-1, 5):
        return []
    ids = [op.id0]
    if op.opcode in (0, 1, 6, -6, 7):
        ids.append(op.id1)
    if op.opcode in (6, -6):
        ids.append(op.data & 0xFFFFFFFF)
    return [i for i in ids if i >= 0]


def retime_ns(comb, fam: Delays, budget_ns: float):
    """`comb` with every op's latency in ns under the model, registers at multiples of `budget_ns`."""
    if budget_ns <= 0:
        raise UnsupportedError(
            f"the clock leaves no time for logic under the {fam.name} delay model (stage budget {budget_ns:.3f} ns)",
            "use a longer clock_ns in the model card",
        )
    ops = list(comb.ops)
    lat: list[float] = []
    for op in ops:
        base = max((lat[i] for i in _operands(op)), default=0.0)
        d = op_delay(op, ops, fam)
        t = base + d
        if d > 0 and ceil(t / budget_ns - 1e-9) > ceil(base / budget_ns - 1e-9):
            # starts at the next register; an op longer than the budget (da4ml cannot cut inside
            # one) overruns its stage, and the report's estimate then says the clock is not met
            t = ceil(base / budget_ns - 1e-9) * budget_ns + d
            if d > budget_ns:
                log.warning(
                    "da4ml op %d (opcode %d, %d bits) takes %.2f ns under the %s model, more than the stage "
                    "budget %.2f ns: its stage will not meet the clock",
                    len(lat),
                    op.opcode,
                    _width(op.qint),
                    d,
                    fam.name,
                    budget_ns,
                )
        lat.append(t)
    return comb._replace(ops=[op._replace(latency=t) for op, t in zip(ops, lat)])


def pipeline(comb, fam: Delays, clock_ns: float, uncertainty_ns: float) -> tuple[Any, dict[str, Any]]:
    """da4ml `Pipeline` of `comb` for the clock under the model, and what was decided."""
    from da4ml.trace.pipeline import to_pipeline

    budget = fam.stage_budget_ns(clock_ns, uncertainty_ns)
    timed = retime_ns(comb, fam, budget)
    pipe = to_pipeline(timed, budget, retiming=False, verbose=False)
    stage_ns = [float(max(st.latency, default=0.0)) - i * budget for i, st in enumerate(pipe.solutions)]
    return pipe, {
        "model": fam.name,
        "stage_budget_ns": round(budget, 4),
        "stages": len(pipe.solutions),
        "stage_delay_ns": [round(max(0.0, v), 4) for v in stage_ns],
        "comb_delay_ns": round(float(max(timed.latency, default=0.0)), 4),
    }
