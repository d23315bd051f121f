"""FPGA families: one object per family, chosen once from the part number (`family_of`).

A `Family` holds what the stages need to know of a part: how yosys synthesises for it (the
`synth_*` command and its cell library: which cells are LUTs, flip-flops, carry, DSP and block
RAM), and its delay figures (`Delays`, the timing model's only numbers; docs/timing.md cites
them), or None when the family has none (then the report gives counts only and compile cuts
da4ml's pipeline by adder levels). An unknown part is one `UnsupportedError` (exit 3), raised
when the card is loaded, so every command says it the same way.

Delay model:

A register-to-register path is estimated as

    t_clk_q + sum over LUT levels (t_net + t_lut) + sum over carry segments
    (t_carry_entry + t_carry_bit x bits rippled [+ t_carry_exit when it leaves through CI -> O])
    + t_net (to the capturing flip-flop) + t_setup

and a stage meets the clock when that plus the clock uncertainty fits the period. `margin`
is the fraction of the period the pipelining keeps free for what the model does not see
(placement, high fan-out nets, congestion).

`xcup` (UltraScale+): every figure is read off Vivado 2021.2 post-route timing reports of an
xczu3eg (UltraScale+, speed grade -1, slow corner) published in the repository
gussmith23/lakeroad-evaluation (runs/2022-07-06-1704-full/vivado-eval/...-timing-route.v); the
target here, xcvu13p -2, is a faster grade, so the figures are pessimistic for it. DS923 (the
Virtex UltraScale+ data sheet) gives block Fmax only (e.g. 775 MHz for BUFG at -2), no LUT or
carry delays; its DSP48E2 Fmax without pipeline registers (410 MHz at -2)
is the multiplier figure. `ecp5`: Lattice ECP5 (speed 6) as placed and routed by
nextpnr-ecp5 (its delays are Lattice's, via Project Trellis); the cell figures are the ones
nextpnr reports them on `tools/bench_timing.py --calibrate`'s designs (a LUT chain, an adder, an
adder tree: not the models the error is then measured on); the net hop is the mean routed hop
on the adder tree's critical path. For xcup the net hop is likewise the mean of the routed hops
on the reports' critical paths.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from trigger_ml.errors import UnsupportedError

MODEL_VERSION = "3"  # bump when a figure changes (part of the compile cache key: stages are cut by it)


@dataclass(frozen=True)
class Delays:
    name: str
    lut_inputs: int
    carry_block: int  # bits per carry cell of the vendor's mapping (CARRY8: 8)
    t_lut: float  # ns, a LUT's input -> output
    t_net: float  # ns, one routed hop between cells (not inside a slice)
    t_carry_entry: float  # ns, LUT-driven S/DI input of a carry cell -> its carry or sum output
    t_carry_bit: float  # ns per bit rippled along the chain (incl. the dedicated hop between cells)
    t_carry_exit: float  # ns, carry in -> sum output bit 0 of a cell (bit j: + j x t_carry_bit)
    t_mux: float  # ns, a wide-function mux (MUXF7/F8, PFUMX/L6MUX21) input -> output
    t_clk_q: float  # ns, flip-flop clock -> Q
    t_setup: float  # ns, flip-flop D setup
    margin: float  # fraction of the clock period kept free by the pipelining
    t_dsp: float | None  # ns, a combinational multiplier block input -> output (None: no figure)
    dsp_widths: tuple[int, int]  # operand widths (narrow, wide) one multiplier block takes
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def adder_ns(self, width: int) -> float:
        """One adder of `width` result bits on the path: hop into its LUT, the LUT, the chain."""
        width = max(1, int(width))
        exit_ = self.t_carry_exit + self.t_carry_bit * (self.carry_block - 1) if width > self.carry_block else 0.0
        return self.t_net + self.t_lut + self.t_carry_entry + self.t_carry_bit * (width - 1) + exit_

    def lut_level_ns(self) -> float:
        return self.t_net + self.t_lut

    def stage_budget_ns(self, clock_ns: float, uncertainty_ns: float) -> float:
        """Combinational delay one pipeline stage may have, inputs to outputs, under the model."""
        return clock_ns * (1.0 - self.margin) - uncertainty_ns - self.t_clk_q - self.t_setup - self.t_net


XCUP = Delays(
    name="xcup",
    lut_inputs=6,
    carry_block=8,
    t_lut=0.17,  # LUT2..LUT6 I -> O: 0.064-0.193 ns in the reports, typical 0.15-0.17
    t_net=0.35,  # routed hops on the critical paths: 0.27-0.43 ns at fan-out 1-19 (0.60 at 65), mean 0.36
    t_carry_entry=0.24,  # CARRY8 S[0] -> CO[7]: 0.238 ns (S[2..3] -> CO[7]: 0.195)
    t_carry_bit=0.051 / 8,  # CARRY8 CI -> CO[7] 0.023 ns + 0.028 ns net to the next CARRY8
    t_carry_exit=0.10,  # CARRY8 CI -> O[j] = 0.10 + j bits (reported O[0] 0.072 ... O[7] 0.146)
    t_mux=0.10,
    t_clk_q=0.095,  # FDRE C -> Q
    t_setup=0.027,  # FDRE setup C -> D
    # the pipelining plans with da4ml's operations (an adder = 1 LUT + a carry chain), but yosys's
    # ABC maps some narrow adders into LUT levels: the netlist walk found stages up to 1.31x the
    # plan (2026-11-23, the test models); 20% keeps those within the clock
    margin=0.20,
    t_dsp=1000 / 410,  # DS923 DSP48E2 FMAX_NOPIPELINEREG, -2 at 0.85 V: 410 MHz (no MREG/ADREG)
    dsp_widths=(18, 27),
    source="Vivado 2021.2 post-route reports, xczu3eg-1 (UltraScale+), gussmith23/lakeroad-evaluation",
)

ECP5 = Delays(
    name="ecp5",
    lut_inputs=4,
    carry_block=2,
    # `python tools/bench_timing.py --calibrate` (nextpnr-ecp5 0.11, LFE5U-85F speed 6), 2026-11-23:
    t_lut=0.236,  # LUT4 A..D -> F
    t_net=0.774,  # mean of the 12 routed hops on the critical path of the calibration adder tree (0.13-1.13)
    t_carry_entry=0.447,  # CCU2C B -> FCO
    t_carry_bit=0.071 / 2,  # CCU2C FCI -> FCO, 2 bits per cell
    t_carry_exit=0.403,  # CCU2C FCI -> F
    t_mux=0.15,  # PFUMX / L6MUX21: not in the calibration designs (assumed)
    t_clk_q=0.525,
    t_setup=0.0,
    margin=0.10,
    t_dsp=None,
    dsp_widths=(18, 18),  # MULT18X18D: no figure (a netlist with one raises)
    source="nextpnr-ecp5 0.11 (Lattice ECP5 speed 6 via Project Trellis); net hop calibrated, tools/bench_timing.py --calibrate",
)


# yosys's classic-ABC LUT mapping for Xilinx (see report/yosys.py, flow `fast`)
_XILINX_FAST_LUT_MAP = """opt_expr -mux_undef -noclkinv
abc -luts 2:2,3,6:5,10,20
clean
techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6
xilinx_dffopt
opt_lut_ins -tech xilinx
clean
"""
_XILINX_CELLS = {
    "lut": ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6"),
    "ff": ("FDRE", "FDSE", "FDCE", "FDPE"),
    "carry": ("CARRY4", "CARRY8"),
    "dsp": ("DSP48E1", "DSP48E2"),
}
_XILINX_BRAM = {"RAMB18E1": 0.5, "RAMB18E2": 0.5, "RAMB36E1": 1.0, "RAMB36E2": 1.0}  # in 36k blocks


@dataclass(frozen=True)
class Family:
    """An FPGA family: its part numbers, its yosys synthesis and cell library, its delay figures."""

    name: str
    title: str
    parts: str  # regular expression matched (case-insensitive) at the start of a part number
    example: str  # a part number of the family, for messages
    synth: str  # yosys synthesis command with {top}; flattened, no I/O buffers
    cells: dict[str, tuple[str, ...]]  # quantity (lut, ff, carry, dsp) -> cell types
    bram: dict[str, float]  # block-RAM cell -> 36k-block equivalents
    delays: Delays | None  # None: no delay figures (timing estimate and timing-driven pipelining unavailable)
    fast_lut_map: str | None = None  # the `fast` flow: synth up to map_luts, then this (None: the full synth)

    def synth_script(self, top: str, flow: str) -> str:
        """The yosys commands that synthesise flattened module `top` with `flow` (auto, fast, abc9)."""
        if flow not in ("auto", "fast", "abc9"):
            raise ValueError(f"unknown yosys flow {flow!r}")
        cmd = self.synth.format(top=top)
        if flow == "fast" and self.fast_lut_map is not None:
            return f"{cmd} -run :map_luts\n{self.fast_lut_map}"
        return f"{cmd}\n"

    def counts(self, cells: dict[str, int]) -> dict[str, float]:
        """LUT, FF, CARRY, DSP and BRAM (36k) totals of a cell histogram."""
        out = {q: float(sum(cells.get(c, 0) for c in names)) for q, names in self.cells.items()}
        out["bram"] = float(sum(n * self.bram.get(c, 0.0) for c, n in cells.items()))
        return out


def _xilinx(name: str, title: str, parts: str, example: str, delays: Delays | None) -> Family:
    return Family(
        name,
        title,
        parts,
        example,
        f"synth_xilinx -family {name} -top {{top}} -flatten -noiopad",
        _XILINX_CELLS,
        _XILINX_BRAM,
        delays,
        _XILINX_FAST_LUT_MAP,
    )


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        _xilinx("xcup", "AMD/Xilinx UltraScale+", r"xc(vu\d+p|ku\d+p|zu|au|k26)", "xcvu13p-flga2577-2-e", XCUP),
        _xilinx("xcu", "AMD/Xilinx UltraScale", r"xc(vu|ku)\d+(?!\d*p)", "xcvu095-ffva2104-2-e", None),
        _xilinx("xc7", "AMD/Xilinx 7 series", r"xc7", "xc7a200tfbg676-2", None),
        Family(
            "ecp5",
            "Lattice ECP5",
            r"lfe5",
            "LFE5U-85F-6BG381C",
            "synth_ecp5 -top {top} -noiopad",
            {"lut": ("LUT4",), "ff": ("TRELLIS_FF",), "carry": ("CCU2C",), "dsp": ("MULT18X18D", "ALU54B")},
            {"DP16KD": 0.5},
            ECP5,
        ),
    )
}
PART = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}\Z")  # a part number: no spaces, quotes or separators


def family_of(part: str) -> Family:
    """The family of a part number; one clear error for a malformed or unknown part."""
    if not isinstance(part, str) or not PART.fullmatch(part):
        raise UnsupportedError(
            f"part {part!r} is not a part number (letters, digits, '-', '_', '.', '+'; at most 64 characters)",
            f"e.g. {FAMILIES['xcup'].example}",
        )
    for fam in FAMILIES.values():
        if re.match(fam.parts, part, re.IGNORECASE):
            return fam
    known = "; ".join(f"{f.title} ({f.example})" for f in FAMILIES.values())
    raise UnsupportedError(
        f"part {part!r} belongs to no FPGA family trigger-ml knows",
        f"use a part of: {known}; or add the family to trigger_ml.fpga.FAMILIES",
    )


def delays_of(part: str) -> Delays:
    """The delay figures of a part's family; an error naming the family when it has none."""
    fam = family_of(part)
    if fam.delays is None:
        have = ", ".join(f.title for f in FAMILIES.values() if f.delays is not None)
        raise UnsupportedError(
            f"the timing model has no delay figures for {fam.title} (part {part!r})",
            f"figures exist for: {have}; set firmware.pipelining: levels, or add the "
            "family's figures to trigger_ml.fpga with their source",
        )
    return fam.delays
