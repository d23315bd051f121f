"""The command line: `trigger-ml data|train|compile|verify|report|run ...`.

Every command raises `TriggerMLError` for bad input; `main` prints it once and exits with its
code (0 success, 1 mismatch, 2 fidelity or budget exceeded, 3 usage or tool error).
"""

from __future__ import annotations

import errno
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from trigger_ml.errors import TriggerMLError
from trigger_ml.progress import console, results, setup_logging

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Simulate, read and plot ECAL window data.")
app.add_typer(data_app, name="data")
log = logging.getLogger("trigger_ml")


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    setup_logging(verbose)


@data_app.command("simulate")
def data_simulate(
    events: Annotated[int, typer.Option(help="number of windows")] = 200_000,
    pu: Annotated[float, typer.Option(help="pileup")] = 200.0,
    seed: Annotated[int, typer.Option()] = 1,
    noise: Annotated[float, typer.Option(help="per-crystal noise, GeV")] = 0.045,
    lsb: Annotated[float, typer.Option(help="trigger-primitive LSB, GeV")] = 0.25,
    bits: Annotated[int, typer.Option(help="saturation bit width of a crystal count")] = 10,
    window: Annotated[int, typer.Option(help="window size N (N x N crystals)")] = 9,
    out: Annotated[Path, typer.Option(help="output HDF5 file")] = Path("data/ecal.h5"),
) -> None:
    """Simulate ECAL windows (eg, pu and anomaly classes) and write them to HDF5."""
    from trigger_ml.data import SimConfig, from_windows, simulate, write_h5
    from trigger_ml.progress import task

    try:
        cfg = SimConfig(window=window, pu=pu, noise_gev=noise, lsb_gev=lsb, bits=bits)
    except ValueError as exc:
        raise TriggerMLError(f"bad simulation option: {exc}", "see `trigger-ml data simulate --help`")
    if events < 1:
        raise TriggerMLError(f"--events must be >= 1, got {events}")
    with task("simulating windows", events) as advance:
        w = simulate(events, cfg, seed, progress=advance)
    ds = from_windows(w)
    write_h5(ds, out)
    log.info("wrote %d windows (%s) to %s", len(ds), ", ".join(ds.class_names), out)


@data_app.command("plot")
def data_plot(
    data: Annotated[Path, typer.Argument(help="data file (.h5, .npz)")] = Path("data/ecal.h5"),
    out: Annotated[Path, typer.Option(help="output folder for PNGs")] = Path("plots"),
) -> None:
    """Plot features and mean images per class; print the cut-based baseline's working point."""
    from trigger_ml.data import read_dataset
    from trigger_ml.data.baseline import baseline_pass, working_point
    from trigger_ml.data.plots import plot_all

    ds = read_dataset(data)
    wp = working_point(baseline_pass(ds.features), ds.is_signal, ds.is_background)
    results.print(f"cut-based baseline (CMS Phase-2 barrel standalone EG ID) on {len(ds)} windows "
                  f"at PU {ds.meta.get('pu', '?')}: {wp}", highlight=False, soft_wrap=True)
    for p in plot_all(ds, out):
        log.info("wrote %s", p)


@app.command("train")
def train_cmd(
    card: Annotated[Path, typer.Argument(help="model card, e.g. models/eg_mlp.yaml")],
    data: Annotated[Path, typer.Option(help="data file (.h5, .npz)")] = Path("data/ecal.h5"),
    out: Annotated[Optional[Path], typer.Option(help="run directory (default runs/<model>)")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="override the card's epochs")] = None,
    max_events: Annotated[Optional[int], typer.Option(help="use at most this many windows")] = None,
) -> None:
    """Train a model card's float twin and quantized model; write model.keras, metrics, plots."""
    import json

    from trigger_ml.config import load_card
    from trigger_ml.data import read_dataset

    c = load_card(card)
    overrides = {k: v for k, v in (("epochs", epochs), ("max_events", max_events)) if v is not None}
    if overrides:
        c = c.with_overrides(training=overrides)
    ds = read_dataset(data)
    from trigger_ml.train.fit import train

    out = out or Path("runs") / c.name
    m = train(c, ds, out)
    results.print_json(json.dumps({k: m[k] for k in ("model", "quantized", "float", "delta", "sparsity")}))
    log.info("wrote %s", out)


def main(argv: Optional[list[str]] = None) -> None:
    try:
        app(args=argv, standalone_mode=False)
    except TriggerMLError as exc:
        console.print(f"[bold red]error:[/] {exc.what}", highlight=False, soft_wrap=True)
        if exc.fix:
            console.print(f"  [bold]fix:[/] {exc.fix}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            console.print(f"[bold red]error:[/] disk full while writing {exc.filename or ''}")
            console.print("  [bold]fix:[/] free space or choose another --out; nothing was left half-written")
        else:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(3)
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]: finished outputs are kept, partial ones removed")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(3)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
