"""`trigger-ml patterns FW ...` and `trigger-ml patterns compare ...`: board-test pattern files.

    trigger-ml patterns FW [--format emp2|emp1|apx|x2o] [--events N | --data FILE] [--out DIR] [--mapping links.yaml]
    trigger-ml patterns compare SET CAPTURED... [--side outputs|inputs] [--skip N|auto]

`write` is the group's default command, so `patterns FW` works (docs/cmssw.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from trigger_ml.cli.app import RootSchema, app
from trigger_ml.errors import MismatchError, TriggerMLError
from trigger_ml.progress import results


class _WriteByDefault(TyperGroup):
    """`patterns FW ...` is `patterns write FW ...`; `patterns compare ...` is the other command."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["write", *args]
        return super().parse_args(ctx, args)


patterns_app = typer.Typer(
    cls=_WriteByDefault,
    no_args_is_help=True,
    help="Board-test pattern files (DemonstratorTools formats) of a compiled model.",
)
app.add_typer(patterns_app, name="patterns")


@patterns_app.command("write")
def patterns_write(
    firmware: Annotated[Path, typer.Argument(help="compiled model directory (from `trigger-ml compile`)")],
    format: Annotated[str, typer.Option("--format", help="emp2 (EMP >= 0.7) | emp1 | apx | x2o")] = "emp2",
    events: Annotated[int, typer.Option(help="events (simulated windows when no --data is given)")] = 1000,
    data: Annotated[Path | None, typer.Option(help="data file (.h5, .npz, .root): its first --events windows")] = None,
    out: Annotated[
        Path | None, typer.Option(help="pattern-set directory (default <firmware>/patterns/<format>)")
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(help="YAML with inputs: / outputs: link mappings (keys of trigger_ml.patterns.LinkMapping)"),
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the simulated windows or fuzzed words")] = 11,
    root_schema: RootSchema = None,
) -> None:
    """Write the model's inputs packed onto links (inputs_<i>.txt) and the bit-exact model's outputs
    (expected_<i>.txt), in a DemonstratorTools format, with patterns.json (the mapping)."""
    from trigger_ml.config import load_card, load_yaml
    from trigger_ml.layout import FirmwareDir
    from trigger_ml.patterns import canonical, get_format, writer
    from trigger_ml.verify.board import layouts, model_inputs_for, model_patterns

    if events < 1:
        raise TriggerMLError("--events must be >= 1")
    writer(format)  # an unknown or refused format fails before the model runs
    maps = (
        load_yaml(mapping, "link mapping", "write inputs: / outputs: sections (docs/cmssw.md)")
        if mapping is not None
        else load_card(FirmwareDir(firmware).card).patterns or None
    )
    where = f"{mapping}:" if mapping is not None else f"{FirmwareDir(firmware).card}: patterns"
    layouts(firmware, maps, where)  # a mapping that is wrong or out of range fails before the model runs
    ds = None
    imported = load_card(FirmwareDir(firmware).card).input == "tensor"
    if imported and data is not None:
        raise TriggerMLError(
            f"{firmware} is an imported model: it reads no ECAL data",
            "drop --data (its patterns are fuzzed words of its input format)",
        )
    if not imported:
        if data is not None:
            from trigger_ml.data import read_dataset

            ds = read_dataset(data, root_schema)
        else:
            from trigger_ml.data import simulate_dataset

            ds = simulate_dataset(events, seed=seed)
    x, source = model_inputs_for(firmware, ds, events, seed)
    x = x[:events]
    fmt = canonical(format)
    dest = out or firmware / "patterns" / fmt
    spec = model_patterns(firmware, dest, fmt, x, maps, source + (f" from {data}" if data else ""), where)
    i, o = spec["inputs"], spec["outputs"]
    results.print(
        f"{dest}: {spec['events']} events ({source}), {get_format(fmt).name}: inputs on links {i['links']} "
        f"({i['words_per_link']} words per event each, {len(i['files'])} file(s)), expected outputs on "
        f"links {o['links']} ({len(o['files'])} file(s))",
        highlight=False,
        soft_wrap=True,
    )


@patterns_app.command("compare")
def patterns_compare(
    expected: Annotated[Path, typer.Argument(help="pattern-set directory (from `trigger-ml patterns`)")],
    captured: Annotated[list[Path], typer.Argument(help="the board's captured files, in order")],
    side: Annotated[str, typer.Option(help="which expected files: outputs (expected_*) or inputs")] = "outputs",
    format: Annotated[str | None, typer.Option("--format", help="captured files' format (default: detected)")] = None,
    skip: Annotated[
        str,
        typer.Option(
            help="frames to drop at the start of each captured file (the board's "
            "latency), or auto: align the first valid frames"
        ),
    ] = "0",
) -> None:
    """Compare a board's captured pattern files with the expected ones; exit 1 naming the first
    differing event, link, frame and word (and the model's value in it)."""
    from trigger_ml.patterns.sets import compare_files  # numpy only: no model, no TensorFlow

    if skip != "auto" and not skip.isdigit():
        raise TriggerMLError(f"--skip must be a number of frames or auto, not {skip!r}")
    res = compare_files(expected, captured, side, format, None if skip == "auto" else int(skip))
    if res.first is not None:
        raise MismatchError(
            f"{res.differing_frames} of {res.compared_frames} frames differ; first: {res.first.describe()}",
            "see the event's inputs in the pattern set's inputs files",
        )
    results.print(
        f"{len(captured)} captured file(s) equal the expected {side}: {res.compared_frames} frames", highlight=False
    )
