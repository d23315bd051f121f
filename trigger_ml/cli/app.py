"""The Typer application and the options several commands share (one name, one meaning, one help text)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from trigger_ml.errors import TriggerMLError
from trigger_ml.progress import results, setup_logging

HELP = """trigger-ml: quantization-aware Keras models to bit-exact FPGA Level-1 trigger firmware.

Commands: data (simulate, plot), train, compile, verify, report, run (the whole chain), scan,
import, export, patterns. Exit codes: 0 success, 1 bit-exact mismatch, 2 fidelity or budget
exceeded, 3 usage, input or tool error, 4 a scan point failed, 5 an unexpected error (a bug),
130 interrupted. README.md documents every command."""

app = typer.Typer(no_args_is_help=True, add_completion=False, help=HELP, rich_markup_mode="markdown")
data_app = typer.Typer(no_args_is_help=True, help="Simulate, read and plot ECAL window data.")
app.add_typer(data_app, name="data")
log = logging.getLogger("trigger_ml")

# options shared by several commands: one name, one meaning, one help text
RootSchema = Annotated[
    Path | None, typer.Option(help="YAML schema mapping our fields to the branches of a .root data file (README, Data)")
]
DataFile = Annotated[
    Path | None, typer.Option(help="your data file (.h5, .npz, .root); default: simulate --events windows")
]
Events = Annotated[int, typer.Option(help="windows to simulate when no --data is given")]
VerifyEvents = Annotated[int, typer.Option(help="windows checked bit for bit per model (at most)")]
Fuzz = Annotated[
    int, typer.Option(help="random words of the input format per model besides its extremes (<= 1,000,000)")
]
Rtl = Annotated[
    bool, typer.Option(help="the RTL levels: da4ml's Verilog, its software model, the Verilator simulation")
]
Synth = Annotated[bool, typer.Option(help="yosys synthesis of the RTL for the figures (cached by the RTL's hash)")]


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    setup_logging(verbose)


def _check_counts(events: int, verify_events: int, fuzz: int) -> None:
    """--events, --verify-events and --fuzz within their documented bounds."""
    from trigger_ml.verify.exact import MAX_FUZZ

    if events < 1 or verify_events < 1:
        raise TriggerMLError(f"--events {events} / --verify-events {verify_events}: each must be at least 1")
    if not 0 <= fuzz <= MAX_FUZZ:
        raise TriggerMLError(
            f"--fuzz {fuzz:,} is outside 0 .. {MAX_FUZZ:,}",
            f"use at most {MAX_FUZZ:,} random words per check (run several checks for more)",
        )


def _print_and_write(title: str, head: list[str], rows: list[list[str]], dest: Path) -> None:
    """Print a summary table and write it as Markdown (atomically)."""
    from rich.table import Table

    from trigger_ml.atomic import atomic_file
    from trigger_ml.report.build import md_table

    table = Table(title=title)
    for col in head:
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*r)
    results.print(table)
    with atomic_file(dest) as tmp:
        tmp.write_text(md_table(head, rows))
