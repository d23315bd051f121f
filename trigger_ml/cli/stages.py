"""`trigger-ml train|compile|verify|report` (one stage each), `run` (the whole chain, resumable) and `scan`
(a grid of runs on dask)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trigger_ml.cli.app import (
    DataFile,
    Events,
    Fuzz,
    RootSchema,
    Rtl,
    Synth,
    VerifyEvents,
    _check_counts,
    _print_and_write,
    app,
    log,
)
from trigger_ml.errors import TriggerMLError
from trigger_ml.progress import console, results


@app.command("train")
def train_cmd(
    card: Annotated[Path, typer.Argument(help="model card, e.g. models/eg_mlp.yaml")],
    data: Annotated[Path, typer.Option(help="data file (.h5, .npz)")] = Path("data/ecal.h5"),
    out: Annotated[Path | None, typer.Option(help="run directory (default runs/<model>)")] = None,
    epochs: Annotated[int | None, typer.Option(help="override the card's epochs")] = None,
    max_events: Annotated[int | None, typer.Option(help="use at most this many windows")] = None,
    root_schema: RootSchema = None,
) -> None:
    """Train a model card's float twin and quantized model; write model.keras, metrics, plots."""
    import json

    from trigger_ml.config import load_card
    from trigger_ml.data import read_dataset

    c = load_card(card)
    overrides = {k: v for k, v in (("epochs", epochs), ("max_events", max_events)) if v is not None}
    if overrides:
        c = c.with_overrides(training=overrides)
    ds = read_dataset(data, root_schema)
    from trigger_ml.train.fit import train

    out = out or Path("runs") / c.name
    m = train(c, ds, out)
    results.print_json(json.dumps({k: m[k] for k in ("model", "quantized", "float", "delta", "sparsity")}))
    log.info("wrote %s", out)


@app.command("compile")
def compile_cmd(
    run: Annotated[Path, typer.Argument(help="training run directory (from `trigger-ml train`)")],
    out: Annotated[Path | None, typer.Option(help="firmware directory (default firmware/<model>)")] = None,
    strategy: Annotated[str | None, typer.Option(help="latency | distributed_arithmetic (default: model card)")] = None,
    backend: Annotated[str | None, typer.Option(help="hls4ml backend: Vitis | Vivado (default: model card)")] = None,
    part: Annotated[str | None, typer.Option(help="FPGA part (default: model card)")] = None,
    clock: Annotated[float | None, typer.Option(help="clock period in ns (default: model card)")] = None,
    rtl: Rtl = True,
    vendor: Annotated[
        bool, typer.Option(help="run the vendor HLS synthesis (vitis_hls/vivado_hls) when on PATH")
    ] = False,
    cache: Annotated[bool, typer.Option(help="use the compile cache")] = True,
    force: Annotated[
        bool, typer.Option("--force", help="compile even when g++ is estimated to need more memory than available")
    ] = False,
) -> None:
    """Compile a trained model: hls4ml project (hls/), da4ml Verilog (rtl/), C emulator (emulator/), manifest."""
    from trigger_ml.compile import Options, compile_run
    from trigger_ml.compile.driver import read_run

    out = out or Path("firmware") / read_run(run)[0].name
    opts = Options(
        strategy=strategy,
        backend=backend,
        part=part,
        clock_ns=clock,
        rtl=rtl,
        vendor=vendor,
        use_cache=cache,
        force=force,
    )
    with console.status(f"compiling {run} -> {out}"):
        res = compile_run(run, out, opts)
    _print_compile(res)


def _short(precision: str) -> str:
    """`fixed<9,2,TRN,WRAP,0>` -> `fixed<9,2>` (hls4ml's defaults left out; other modes kept)."""
    from trigger_ml.fixed import Fixed

    try:
        return str(Fixed.parse(precision))
    except TriggerMLError:
        return precision.replace("FixedPointQuantizer", "Quantizer")


def _print_compile(res) -> None:
    from rich.table import Table

    m = res.manifest
    fw = m["config"]["firmware"]
    table = Table(
        title=f"{m['model']}: precisions derived from the quantized model ({fw['strategy']}, {fw['backend']})"
    )
    for col in ("layer", "class", "result", "weight", "bias", "accum"):
        table.add_column(col)
    for row in m["layers"]:
        table.add_row(*(_short(str(row.get(c, ""))) for c in ("layer", "class", "result", "weight", "bias", "accum")))
    results.print(table)
    e = m["interface"]["emulator"]
    results.print(
        f"interface: {e['n_in']} x {e['input']} in -> {e['n_out']} x {e['output']} out", highlight=False, soft_wrap=True
    )
    if m["rtl"]["written"]:
        est = m["rtl"]["estimate"]
        results.print(
            f"rtl: {est['stages']} pipeline stages at {fw['clock_ns']} ns, {est['lut']:.0f} LUT and "
            f"{est['ff']} FF ({est['source']})",
            highlight=False,
            soft_wrap=True,
        )
    for note in res.notes:
        log.info("%s", note)
    times = ", ".join(f"{k} {v:.2f} s" for k, v in res.timings_s.items())
    log.info("wrote %s (%s)%s", res.out, times, " [cached]" if res.cached else "")


@app.command("verify")
def verify_cmd(
    firmware: Annotated[Path, typer.Argument(help="compiled model directory (from `trigger-ml compile`)")],
    data: DataFile = None,
    events: Events = 10_000,
    verify_events: VerifyEvents = 10_000,
    fuzz: Fuzz = 1000,
    rtl: Rtl = True,
    fidelity: Annotated[
        bool, typer.Option(help="check physics fidelity against the float twin (card thresholds)")
    ] = True,
    budget: Annotated[
        bool,
        typer.Option(help="check latency/II/resources against the card's budget (the report's verdict, best figures)"),
    ] = True,
    synth: Synth = True,
    junit: Annotated[Path | None, typer.Option(help="write a JUnit XML report here")] = None,
    root_schema: RootSchema = None,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="when the firmware's C++ sources differ from its manifest.json, compile and run them as they "
            "now stand (default: refuse, exit 3, naming the files)",
        ),
    ] = False,
) -> None:
    """Check bit for bit: quantized Keras model = C simulation (emulator) = da4ml software model = RTL;
    then physics fidelity and the budget. Exit 0 all pass, 1 mismatch, 2 fidelity or budget exceeded,
    3 usage or tool error. Verify runs the firmware directory's compiled code: verify firmware from
    someone else only as you would run their code (README, "Verifying firmware from someone else")."""
    from rich.table import Table

    from trigger_ml.atomic import check_file
    from trigger_ml.compile import manifest
    from trigger_ml.config import load_card
    from trigger_ml.errors import GateError, MismatchError
    from trigger_ml.layout import FirmwareDir
    from trigger_ml.report.build import budget_verdict
    from trigger_ml.verify import junit as J
    from trigger_ml.verify.gates import VERDICT
    from trigger_ml.verify.run import verify_firmware

    _check_counts(events, verify_events, fuzz)
    if junit is not None:
        check_file(junit)  # a device or a folder is refused before the checks run, not after
    fw = FirmwareDir(firmware)
    manifest.read(fw.root)  # a compiled model directory, before any data is read
    manifest.check_links(fw.root)  # a link leading out of it is refused before its card is read
    if load_card(fw.card).input == "tensor":
        if data is not None:
            raise TriggerMLError(
                f"{firmware} is an imported model: it reads no ECAL data",
                "drop --data (it is checked on fuzzed words of its input format)",
            )
        ds = None
    elif data is not None:
        from trigger_ml.data import read_dataset

        ds = read_dataset(data, root_schema)
    else:
        from trigger_ml.data import simulate_dataset

        ds = simulate_dataset(events, seed=11)
    if ds is not None and len(ds) > verify_events:
        ds = ds.subset(slice(0, verify_events))
    with console.status("building every level, comparing, checking fidelity"):
        out = verify_firmware(firmware, ds, fuzz, rtl=rtl, check_fidelity=fidelity, rebuild=rebuild)
    if budget:
        with console.status("budget: the report's best figures" + (" (yosys synthesis, cached)" if synth else "")):
            out.gates += budget_verdict(firmware, synth=synth)
    table = Table(title=f"{firmware}: bit-exact check against the quantized Keras model")
    for col in ("level", "inputs", "events", "mismatched", "s"):
        table.add_column(col)
    for r in out.exact:
        table.add_row(
            r.level,
            r.inputs,
            str(r.compared),
            str(r.mismatched),
            f"{r.seconds:.2f}",
            style=None if r.ok else "bold red",
        )
    results.print(table)
    if out.gates:
        gates = Table(title="fidelity (physics, quantized vs float twin) and budget (firmware figures)")
        for col in ("check", "value", "limit", "result", "source / detail"):
            gates.add_column(col)
        for c in out.gates:
            verdict = VERDICT[c.ok]
            gates.add_row(
                c.name,
                "" if c.value is None else f"{c.value:.4g}",
                "" if c.limit is None else f"{c.limit:g}",
                verdict,
                c.detail,
                style="bold red" if c.ok is False else None,
            )
        results.print(gates)
    if junit is not None:
        J.write(junit, f"trigger-ml.verify.{fw.root.name}", out.cases())
    if out.mismatched:
        r = out.mismatched[0]
        raise MismatchError(
            f"{len(out.mismatched)} exact check(s) failed; first: {r.name()}: {r.mismatched}/{r.compared} "
            f"events differ, event {r.first['index']} expected {r.first['expected']} got {r.first['got']}"
            f"\n  {out.diagnosis}",
            f"reproducer saved to {out.reproducer}",
        )
    if out.failed_gates:
        raise GateError(
            "; ".join(f"{c.name}: {c.message()}" for c in out.failed_gates),
            "improve the model or relax the card's fidelity/budget (exactness passed)",
        )
    log.info(
        "all %d exact checks pass; %d gates pass, %d not checkable",
        len(out.exact),
        sum(1 for c in out.gates if c.ok),
        sum(1 for c in out.gates if c.ok is None),
    )


@app.command("report")
def report_cmd(
    firmware: Annotated[list[Path], typer.Argument(help="compiled model directories (several: a summary table too)")],
    synth: Synth = True,
    synth_max_lut: Annotated[
        int,
        typer.Option(min=0, help="do not run yosys when da4ml estimates more LUTs than this (0: always run it)"),
    ] = 1_000_000,
    summary: Annotated[
        Path | None,
        typer.Option(help="write the summary table (Markdown) here; default with several models: menu.md beside them"),
    ] = None,
) -> None:
    """Latency, II and resources of compiled models, each figure labelled by its source, with plots:
    <firmware>/report/report.{json,md,html}."""
    from rich.table import Table

    from trigger_ml.layout import FirmwareDir
    from trigger_ml.report import build as R
    from trigger_ml.verify.gates import VERDICT

    reps = []
    for fw in firmware:
        with console.status(f"{fw}: report{' (yosys synthesis of the RTL)' if synth else ''}"):
            rep = R.write(fw, synth=synth, synth_max_lut=synth_max_lut)
        reps.append(rep)
        table = Table(title=f"{fw}: latency and resources ({rep['target']['part']}, {rep['target']['clock_ns']:g} ns)")
        for col in ("quantity", "value", "source"):
            table.add_column(col)
        for q, f in rep["figures"].items():
            table.add_row(R.LABELS[q], R._fmt(f["value"]), f["source"])
        for c in rep["budget"]:
            table.add_row(
                c["check"],
                "" if c["value"] is None else R._fmt(c["value"]),
                VERDICT[c["ok"]],
                style="bold red" if c["ok"] is False else None,
            )
        results.print(table)
        log.info("wrote %s", FirmwareDir(fw).report_html)
    if len(reps) > 1 or summary is not None:
        head, rows = R.menu(reps)
        dest = summary or Path(firmware[0]).parent / "menu.md"
        _print_and_write("trigger menu", head, rows, dest)
        log.info("wrote %s", dest)


@app.command("run")
def run_cmd(
    models: Annotated[
        str, typer.Option(help="comma-separated model cards from --cards")
    ] = "eg_mlp,eg_cnn,ad_autoencoder",
    data: DataFile = None,
    events: Events = 200_000,
    verify_events: VerifyEvents = 10_000,
    fuzz: Fuzz = 1000,
    rtl: Rtl = True,
    synth: Synth = True,
    fast: Annotated[bool, typer.Option(help="tiny configs for smoke tests (20k windows, 2 epochs)")] = False,
    from_: Annotated[
        str | None, typer.Option("--from", help="re-run from this stage on: data|train|compile|verify|report")
    ] = None,
    to: Annotated[str, typer.Option(help="stop after this stage")] = "report",
    cards: Annotated[Path, typer.Option(help="directory of model cards")] = Path("models"),
    runs: Annotated[Path, typer.Option(help="training runs (and the stage stamps)")] = Path("runs"),
    firmware: Annotated[Path, typer.Option(help="compiled models")] = Path("firmware"),
    root_schema: RootSchema = None,
) -> None:
    """The whole chain for each model: data -> train -> compile -> verify -> report, resumable
    (finished stages are reused by content hash), then a summary table. Exit 0 all pass, 1 a
    mismatch, 2 a fidelity or budget gate failed."""
    import json

    from trigger_ml import pipeline as P
    from trigger_ml.atomic import atomic_file
    from trigger_ml.layout import RunsDir

    _check_counts(events, verify_events, fuzz)
    plan = P.Plan(
        models=tuple(m.strip() for m in models.split(",") if m.strip()),
        data=data,
        events=events,
        fast=fast,
        from_stage=from_,
        to_stage=to,
        cards=cards,
        runs=runs,
        firmware=firmware,
        options=P.StageOptions(verify_events, fuzz, rtl, synth),
        root_schema=root_schema,
    )
    out = P.run(plan)
    head, rows = P.summary_table(out)
    rd = RunsDir(runs)
    _print_and_write("trigger-ml run: summary", head, rows, rd.summary_md)
    with atomic_file(rd.summary_json) as tmp:
        tmp.write_text(
            json.dumps({"rows": out.rows, "timings_s": out.timings_s, "skipped": out.skipped}, indent=1, default=str)
        )
    total = sum(out.timings_s.values())
    log.info(
        "stages run: %d (%.0f s), reused: %d; summary in %s", len(out.timings_s), total, len(out.skipped), rd.summary_md
    )
    if out.exit_code:
        raise typer.Exit(out.exit_code)


@app.command("scan")
def scan_cmd(
    card: Annotated[Path, typer.Argument(help="model card to scan (e.g. models/eg_mlp.yaml)")],
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            help="key=v1,v2,...: bits, sparsity, strategy (latency|da), reuse, clock, epochs, ... or section.field; "
            "repeat for more axes (the scan is their product)",
        ),
    ] = None,
    point: Annotated[
        list[str] | None, typer.Option("--point", help="one extra point key=v,key=v (besides the grid's product)")
    ] = None,
    data: DataFile = None,
    events: Events = 200_000,
    out: Annotated[Path | None, typer.Option(help="scan directory (default: scans/<model>)")] = None,
    scheduler: Annotated[
        str,
        typer.Option(help="local (a LocalCluster on this machine) or a dask scheduler address such as tcp://host:8786"),
    ] = "local",
    workers: Annotated[int | None, typer.Option(help="LocalCluster workers (default: one per core)")] = None,
    verify_events: VerifyEvents = 10_000,
    fuzz: Fuzz = 1000,
    rtl: Rtl = True,
    synth: Synth = True,
) -> None:
    """Design-space scan on dask: each point of the grid is trained, compiled, verified and reported
    like `run`; finished points are skipped on re-run; a failed point is recorded and the scan goes
    on. Writes results.csv/.md/.json and pareto.png. Exit 0 all points ok, 4 some point failed."""
    from trigger_ml.layout import ScanDir
    from trigger_ml.pipeline import StageOptions
    from trigger_ml.scan import ScanSpec, parse_grid, parse_point, scan

    _check_counts(events, verify_events, fuzz)
    spec = ScanSpec(
        card=card,
        grid=parse_grid(grid or []),
        extra=tuple(parse_point(p) for p in point or []),
        out=out or Path("scans") / card.stem,
        scheduler=scheduler,
        workers=workers,
        data=data,
        events=events,
        options=StageOptions(verify_events, fuzz, rtl, synth),
    )
    res = scan(spec)
    head = ["point", "status", f"{res.physics_name} (q / float)", "exact", "latency ns", "LUT / FF / DSP", "Pareto"]
    rows = [
        [
            r["params"],
            r["status"] if not r["error"] else f"failed: {r['error']}",
            "" if r["physics"] is None else f"{r['physics']:.4f} / {r['physics_float']:.4f}",
            r["exact"],
            "" if r["latency_ns"] is None else f"{r['latency_ns']:g}",
            "" if r["lut"] is None else " / ".join(f"{r[k]:,.0f}" for k in ("lut", "ff", "dsp")),
            "yes" if r["pareto"] else "",
        ]
        for r in res.rows
    ]
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"trigger-ml scan: {spec.out} ({len(res.ran)} run, {len(res.skipped)} reused, "
        f"{len(res.failed)} failed, {res.seconds:.0f} s)"
    )
    for col in head:
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*(escape(c) for c in r))
    results.print(table)
    sd = ScanDir(spec.out)
    log.info("results: %s (.md, .json), %s", sd.results_csv, sd.pareto)
    if res.exit_code:
        raise typer.Exit(res.exit_code)
