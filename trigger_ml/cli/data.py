"""`trigger-ml data simulate|plot`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trigger_ml.cli.app import RootSchema, data_app, log
from trigger_ml.errors import TriggerMLError
from trigger_ml.progress import results


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
        raise TriggerMLError(f"bad simulation option: {exc}", "see `trigger-ml data simulate --help`") from None
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
    root_schema: RootSchema = None,
) -> None:
    """Plot features and mean images per class; print the cut-based baseline's working point."""
    from trigger_ml.data import read_dataset
    from trigger_ml.data.baseline import baseline_pass, working_point
    from trigger_ml.data.plots import plot_all

    ds = read_dataset(data, root_schema)
    wp = working_point(baseline_pass(ds.features), ds.is_signal, ds.is_background)
    results.print(
        f"cut-based baseline (CMS Phase-2 barrel standalone EG ID) on {len(ds)} windows "
        f"at PU {ds.meta.get('pu', '?')}: {wp}",
        highlight=False,
        soft_wrap=True,
    )
    for p in plot_all(ds, out):
        log.info("wrote %s", p)
