"""Command-line functions for CMSSW and board tests, for `trigger_ml.cli` to register:

    trigger-ml export FW --cmssw DIR           export_cmssw_cmd (an option of the existing `export`)
    trigger-ml patterns FW [--format emp2|emp1|apx|x2o] [--events N | --data FILE] [--out DIR]
                           [--mapping links.yaml]
    trigger-ml patterns compare SET CAPTURED... [--side outputs|inputs] [--skip N|auto]

`register(app)` adds the `patterns` group (with `write` as its default command, so `patterns FW`
works); `export --cmssw` is one more option of `export` (see /work/notes/cmssw.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from trigger_ml.errors import MismatchError, TriggerMLError
from trigger_ml.progress import console, results

log = logging.getLogger("trigger_ml")


class _WriteByDefault(TyperGroup):
    """`patterns FW ...` is `patterns write FW ...`; `patterns compare ...` is the other command."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["write", *args]
        return super().parse_args(ctx, args)


patterns_app = typer.Typer(cls=_WriteByDefault, no_args_is_help=True,
                           help="Board-test pattern files (DemonstratorTools formats) of a compiled model.")


def export_cmssw_cmd(firmware: Path, cmssw: Path) -> Path:
    """`export FW --cmssw DIR`: the plugin's sources, Makefile, BuildFile.xml and README in DIR/<model>/."""
    from trigger_ml.compile.cmssw_export import export_cmssw

    with console.status(f"exporting {firmware} for CMSSW"):
        out = export_cmssw(firmware, cmssw)
    log.info("wrote %s (make; README.md shows the CMSSW lines that load it)", out)
    return out


@patterns_app.command("write")
def patterns_write(
    firmware: Annotated[Path, typer.Argument(help="compiled model directory (from `trigger-ml compile`)")],
    format: Annotated[str, typer.Option("--format", help="emp2 (EMP >= 0.7) | emp1 | apx | x2o")] = "emp2",
    events: Annotated[int, typer.Option(help="events (simulated windows when no --data is given)")] = 1000,
    data: Annotated[Path | None, typer.Option(help="data file (.h5, .npz, .root): its first --events windows")] = None,
    out: Annotated[Path | None, typer.Option(help="pattern-set directory (default <firmware>/patterns/<format>)")] = None,
    mapping: Annotated[Path | None, typer.Option(help="YAML with inputs: / outputs: link mappings "
                                                    "(keys of trigger_ml.patterns.LinkMapping)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the simulated windows or fuzzed words")] = 11,
) -> None:
    """Write the model's inputs packed onto links (inputs_<i>.txt) and the bit-exact model's outputs
    (expected_<i>.txt), in a DemonstratorTools format, with patterns.json (the mapping)."""
    import yaml

    from trigger_ml.compile.driver import CARD
    from trigger_ml.config import load_card
    from trigger_ml.patterns import canonical, get_format, writer
    from trigger_ml.verify.board import model_inputs_for, model_patterns

    if events < 1:
        raise TriggerMLError("--events must be >= 1")
    writer(format)  # an unknown or refused format fails before the model runs
    ds = None
    imported = load_card(firmware / CARD).input == "tensor"
    if imported and data is not None:
        raise TriggerMLError(f"{firmware} is an imported model: it reads no ECAL data",
                             "drop --data (its patterns are fuzzed words of its input format)")
    if not imported:
        if data is not None:
            from trigger_ml.data import read_dataset

            ds = read_dataset(data)
        else:
            from trigger_ml.data import simulate_dataset

            ds = simulate_dataset(events, seed=seed)
    x, source = model_inputs_for(firmware, ds, events, seed)
    x = x[:events]
    maps = yaml.safe_load(mapping.read_text()) if mapping is not None else None
    fmt = canonical(format)
    dest = out or firmware / "patterns" / fmt
    spec = model_patterns(firmware, dest, fmt, x, maps, source + (f" from {data}" if data else ""))
    i, o = spec["inputs"], spec["outputs"]
    results.print(f"{dest}: {spec['events']} events ({source}), {get_format(fmt).name}: inputs on links {i['links']} "
                  f"({i['words_per_link']} words per event each, {len(i['files'])} file(s)), expected outputs on "
                  f"links {o['links']} ({len(o['files'])} file(s))", highlight=False, soft_wrap=True)


@patterns_app.command("compare")
def patterns_compare(
    expected: Annotated[Path, typer.Argument(help="pattern-set directory (from `trigger-ml patterns`)")],
    captured: Annotated[list[Path], typer.Argument(help="the board's captured files, in order")],
    side: Annotated[str, typer.Option(help="which expected files: outputs (expected_*) or inputs")] = "outputs",
    format: Annotated[str | None, typer.Option("--format", help="captured files' format (default: detected)")] = None,
    skip: Annotated[str, typer.Option(help="frames to drop at the start of each captured file (the board's "
                                           "latency), or auto: align the first valid frames")] = "0",
) -> None:
    """Compare a board's captured pattern files with the expected ones; exit 1 naming the first
    differing event, link, frame and word (and the model's value in it)."""
    from trigger_ml.verify.board import compare_capture

    if skip != "auto" and not skip.isdigit():
        raise TriggerMLError(f"--skip must be a number of frames or auto, not {skip!r}")
    res = compare_capture(expected, captured, side, format, None if skip == "auto" else int(skip))
    if res.first is not None:
        raise MismatchError(f"{res.differing_frames} of {res.compared_frames} frames differ; first: "
                            f"{res.first.describe()}", "see the event's inputs in the pattern set's inputs files")
    results.print(f"{len(captured)} captured file(s) equal the expected {side}: {res.compared_frames} frames",
                  highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `patterns` commands to the trigger-ml command line."""
    app.add_typer(patterns_app, name="patterns")

