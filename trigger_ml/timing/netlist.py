"""Longest register-to-register path of a synthesised netlist (yosys `write_json`), in LUT
levels, carry bits and nanoseconds under a family's delay model (`fpga.Delays`).

Sources of a path: module input ports (a pipeline stage's inputs are the previous stage's
registers) and flip-flop Q outputs, both at t_clk_q. Sinks: module output ports and flip-flop
inputs, each one net hop and a setup time away. Cells (Xilinx and ECP5 primitives as yosys
maps them):
- LUT1..LUT6 (Xilinx), LUT4 (ECP5): one LUT level; a routed net hop into each input;
- INV (Xilinx): free and transparent (Vivado folds it into the neighbouring LUT or carry input);
- MUXF7/F8/F9, PFUMX, L6MUX21: wide-function muxes fed from LUTs in the same slice;
- DSP48E1/E2, MULT18X18D, ALU54B: combinational multiplier blocks, every input to every output;
- CARRY4/CARRY8 (Xilinx), CCU2C (ECP5): bit-accurate arcs. From a sum/select input of bit i to
  the carry or sum output of bit j >= i: t_carry_entry + (j - i) bits; from the carry input to
  carry-out bit j: j + 1 bits; carry input to sum bit j: t_carry_exit + j bits. Xilinx LUTs feed
  the carry cell of their slice and carry cells feed each other on the dedicated chain: no net
  hop there (a CCU2C holds its own LUTs, so its inputs are routed).
Anything else (a vendor block, a memory) raises: the model has no figure for it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from trigger_ml.errors import UnsupportedError
from trigger_ml.fpga import Delays

LUTS = {"LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6"}
INV = "INV"  # yosys leaves inverters that Vivado folds into the LUT or carry input: free, transparent
MUXES = {"MUXF7", "MUXF8", "MUXF9", "PFUMX", "L6MUX21"}
FFS = {"FDRE", "FDSE", "FDCE", "FDPE", "TRELLIS_FF"}
FF_OUT = {"Q"}
CONSTANT_CELLS = {"VCC", "GND", "VHI", "VLO"}
DSPS = {"DSP48E1", "DSP48E2", "MULT18X18D", "ALU54B"}  # combinational: every input -> every output, t_dsp
# carry cells: type -> (bits per cell, [(per-bit input ports)], carry-in ports, carry-out port, sum port)
CARRY = {
    "CARRY4": (4, ("S", "DI"), ("CI", "CYINIT"), "CO", "O"),
    "CARRY8": (8, ("S", "DI"), ("CI", "CI_TOP"), "CO", "O"),
}
CCU2C_IN = {0: ("A0", "B0", "C0", "D0"), 1: ("A1", "B1", "C1", "D1")}


@dataclass(frozen=True)
class Arrival:
    """The latest arrival at a net bit and what the path to it went through."""

    ns: float
    luts: int = 0
    carry_bits: int = 0
    hops: int = 0
    start: str = ""
    cell: str = ""  # the cell this arrival left (for the path's cell list)
    prev: Arrival | None = None


NONE = Arrival(-1.0)


@dataclass(frozen=True)
class Path:
    ns: float  # clock-to-Q + logic + nets + setup (without clock uncertainty)
    lut_levels: int
    carry_bits: int
    net_hops: int
    start: str
    end: str
    cells: tuple[str, ...] = ()  # cell types along the path, source to sink
    names: tuple[str, ...] = ()  # and their names in the netlist

    def to_dict(self) -> dict[str, Any]:
        return {
            "delay_ns": round(self.ns, 4),
            "lut_levels": self.lut_levels,
            "carry_bits": self.carry_bits,
            "net_hops": self.net_hops,
            "start": self.start,
            "end": self.end,
            "cells": " > ".join(self.cells),
        }


def _bits(conn: list[Any]) -> list[int | None]:
    return [b if isinstance(b, int) else None for b in conn]


class _Walker:
    def __init__(self, module: dict[str, Any], fam: Delays) -> None:
        self.fam = fam
        self.cells = module.get("cells", {})
        self.driver: dict[int, tuple[str, str, int]] = {}
        self.sources: dict[int, str] = {}
        for pname, port in module.get("ports", {}).items():
            if port["direction"] == "input":
                for i, b in enumerate(port["bits"]):
                    if isinstance(b, int):
                        self.sources[b] = f"{pname}[{i}]"
        for cname, cell in self.cells.items():
            t = cell["type"].lstrip("\\$")
            if t in CONSTANT_CELLS or t == "scopeinfo":  # yosys keeps $scopeinfo for flattened hierarchy
                continue
            if not (t in LUTS or t == INV or t in MUXES or t in FFS or t in CARRY or t in DSPS or t == "CCU2C") or (
                t in DSPS and fam.t_dsp is None
            ):
                raise UnsupportedError(
                    f"the timing model has no delay figures for cell type {t!r}",
                    "add its arcs to trigger_ml/timing/netlist.py with their source",
                )
            for port, conn in cell["connections"].items():
                if self._is_output(t, port, cell):
                    for i, b in enumerate(_bits(conn)):
                        if b is not None:
                            self.driver[b] = (cname, port, i)
        self.memo: dict[int, Arrival] = {}

    @staticmethod
    def _is_output(t: str, port: str, cell: dict[str, Any] | None = None) -> bool:
        if cell is not None and port in cell.get("port_directions", {}):
            return cell["port_directions"][port] == "output"
        if t in FFS:
            return port in FF_OUT
        if t in CARRY:
            return port in ("O", "CO")
        if t == "CCU2C":
            return port in ("S0", "S1", "COUT")
        return port in ("O", "Z")

    def _type(self, cname: str) -> str:
        return self.cells[cname]["type"].lstrip("\\$")

    def _hop(self, bit: int | None, into: str) -> Arrival:
        """Arrival at a cell input of kind `into` (lut, mux, carry_in, carry_chain, sink)."""
        if bit is None:
            return NONE
        a = self.arrival(bit)
        if a is NONE:
            return NONE
        drv = self.driver.get(bit)
        while drv and self._type(drv[0]) == INV:  # an inverter is folded into its neighbours
            i_bits = _bits(self.cells[drv[0]]["connections"].get("I", []))
            drv = self.driver.get(i_bits[0]) if i_bits and i_bits[0] is not None else None
        dt = self._type(drv[0]) if drv else ""
        local = (
            (into == "mux" and dt in LUTS | MUXES)
            or (into == "carry_in" and dt in LUTS)
            or (into == "carry_chain" and (dt in CARRY or dt == "CCU2C"))
        )
        if local:
            return a
        return Arrival(a.ns + self.fam.t_net, a.luts, a.carry_bits, a.hops + 1, a.start, a.cell, a.prev)

    def arrival(self, bit: int) -> Arrival:
        if bit in self.memo:
            return self.memo[bit]
        if bit in self.sources:
            res = Arrival(self.fam.t_clk_q, start=self.sources[bit])
        elif bit not in self.driver:
            res = NONE  # undriven or constant
        else:
            cname, port, idx = self.driver[bit]
            res = self._cell_out(cname, self._type(cname), port, idx)
        self.memo[bit] = res
        return res

    def _cell_out(self, cname: str, t: str, port: str, idx: int) -> Arrival:
        f, conn = self.fam, self.cells[cname]["connections"]
        if t in FFS:
            return Arrival(f.t_clk_q, start=cname)
        if t == INV:
            b = _bits(conn.get("I", []))
            return self.arrival(b[0]) if b and b[0] is not None else NONE
        if t in LUTS or t in MUXES or t in DSPS:
            kind, dt = ("lut", f.t_lut) if t in LUTS else ("mux", f.t_mux) if t in MUXES else ("dsp", f.t_dsp)
            ins = [p for p in conn if not self._is_output(t, p, self.cells[cname])]
            best = max((self._hop(b, kind) for p in ins for b in _bits(conn[p])), key=lambda a: a.ns, default=NONE)
            if best is NONE:
                return NONE
            return Arrival(best.ns + dt, best.luts + (t in LUTS), best.carry_bits, best.hops, best.start, cname, best)
        if t == "CCU2C":
            width, cin, j = 2, ["CIN"], {"S0": 0, "S1": 1, "COUT": 1}[port]
            per_bit = {i: [b for p in CCU2C_IN[i] for b in _bits(conn.get(p, []))] for i in (0, 1)}
            sum_out = port != "COUT"
        else:
            width, in_ports, cin_ports, _, _ = CARRY[t]
            cin = list(cin_ports)
            j = idx
            per_bit = {i: [b for p in in_ports for b in _bits(conn.get(p, []))[i : i + 1]] for i in range(width)}
            sum_out = port == "O"
        cands = []
        for i in range(j + 1):
            for b in per_bit.get(i, []):
                a = self._hop(b, "carry_in" if t in CARRY else "routed")  # CCU2C has its own LUTs: inputs are routed
                if a is not NONE:
                    cands.append(
                        Arrival(
                            a.ns + f.t_carry_entry + f.t_carry_bit * (j - i),
                            a.luts,
                            a.carry_bits + j - i + 1,
                            a.hops,
                            a.start,
                            cname,
                            a,
                        )
                    )
        for p in cin:
            for b in _bits(conn.get(p, [])):
                a = self._hop(b, "carry_chain")
                if a is NONE:
                    continue
                dt = f.t_carry_exit + f.t_carry_bit * j if sum_out else f.t_carry_bit * (j + 1)
                cands.append(Arrival(a.ns + dt, a.luts, a.carry_bits + j + 1, a.hops, a.start, cname, a))
        return max(cands, key=lambda a: a.ns, default=NONE)

    def sinks(self, module: dict[str, Any]) -> list[tuple[int, str]]:
        out = []
        for pname, port in module.get("ports", {}).items():
            if port["direction"] == "output":
                out += [(b, f"{pname}[{i}]") for i, b in enumerate(port["bits"]) if isinstance(b, int)]
        for cname, cell in self.cells.items():
            if self._type(cname) in FFS:
                out += [
                    (b, cname)
                    for p, conn in cell["connections"].items()
                    if not self._is_output(self._type(cname), p, cell) and p not in ("C", "CLK")
                    for b in _bits(conn)
                    if b is not None
                ]
        return out


def longest_path(netlist: dict[str, Any], top: str, fam: Delays) -> Path | None:
    """The slowest source-to-sink path of module `top` of a yosys JSON netlist (None: no path)."""
    mods = netlist.get("modules", {})
    module = mods.get(top) or mods.get(f"\\{top}")
    if module is None:
        raise KeyError(f"module {top!r} not in the netlist (has {sorted(mods)})")
    w = _Walker(module, fam)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20_000))  # recursion depth = cells on a path (carry chains are long)
    try:
        best: Path | None = None
        for bit, name in w.sinks(module):
            a = w._hop(bit, "sink")
            if a is NONE:
                continue
            ns = a.ns + fam.t_setup
            if best is None or ns > best.ns:
                cells, x = [], a
                while x is not None and x.cell:
                    cells.append(x.cell)
                    x = x.prev
                best = Path(
                    ns,
                    a.luts,
                    a.carry_bits,
                    a.hops,
                    a.start,
                    name,
                    tuple(w._type(c) for c in reversed(cells)),
                    tuple(reversed(cells)),
                )
        return best
    finally:
        sys.setrecursionlimit(old)
