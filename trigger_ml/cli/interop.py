"""`trigger-ml import|export`: models from elsewhere in, trained and compiled models out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trigger_ml.cli.app import app, log
from trigger_ml.errors import TriggerMLError
from trigger_ml.interop import limits
from trigger_ml.progress import console, results


@app.command("import")
def import_cmd(
    src: Annotated[
        Path,
        typer.Argument(
            help="model.onnx (QONNX or float ONNX), model.json (Keras 2 or QKeras, with --weights), "
            "model.h5 (Keras 2, QKeras or HGQ v1) or model.keras (Keras 3)"
        ),
    ],
    out: Annotated[Path, typer.Option(help="run directory to write (then `trigger-ml compile` it)")],
    weights: Annotated[Path | None, typer.Option(help="the .h5 weights of a Keras 2 / QKeras model.json")] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(
            help="an .npz of x (inputs) and y (the model's own framework's outputs on x), checked at import "
            "(default: <model>.predictions.npz beside the model file, when there)"
        ),
    ] = None,
    input_format: Annotated[
        str | None,
        typer.Option(help="float models (Keras, ONNX): input format fixed<W,I> or ufixed<W,I> (default fixed<16,6>)"),
    ] = None,
    weight_bits: Annotated[
        int | None, typer.Option(help="float ONNX: bits per weight, sign included (default 16)")
    ] = None,
    act_frac_bits: Annotated[
        int | None, typer.Option(help="float ONNX: fractional bits of hidden activations (default 10)")
    ] = None,
    max_model_mb: Annotated[
        int,
        typer.Option(
            min=1,
            envvar=limits.ENV_MODEL_MB,
            help="refuse a model file declaring more data than this (tensors, zip entries, before reading them)",
        ),
    ] = limits.DEFAULT_MODEL_MB,
    max_layers: Annotated[
        int,
        typer.Option(
            min=1, envvar=limits.ENV_LAYERS, help="refuse a model deeper than this (Keras layers, ONNX nodes)"
        ),
    ] = limits.DEFAULT_LAYERS,
) -> None:
    """Import a model from the field (QONNX, float ONNX, Keras 2/3, QKeras, HGQ v1) as a run directory that
    `compile` and `verify` take, keeping its own reference semantics as verify levels."""
    import json

    from trigger_ml.interop import import_model

    with console.status(f"importing {src} -> {out}"):
        try:
            summary = import_model(
                src,
                out,
                weights,
                input_format=input_format,
                weight_bits=weight_bits,
                act_frac_bits=act_frac_bits,
                max_model_mb=max_model_mb,
                max_layers=max_layers,
                predictions=predictions,
            )
        except MemoryError:  # the limits did not stop it: say what to change for a model file
            raise TriggerMLError(
                f"{src}: out of memory while importing it (within --max-model-mb {max_model_mb})",
                "import it on a machine with more memory, or lower --max-model-mb to refuse such files early",
            ) from None
    keys = ("kind", "label", "exact_path", "input_format", "reference", "check", "tolerance", "n_inputs", "n_outputs")
    keys += ("layers",)
    shown = {k: summary[k] for k in keys if k in summary}
    if "policy" in summary:  # the precision policy's decisions (trigger_ml.interop.policy), one line each
        shown["policy"] = [f"{d['node']}: {d['became']}" for d in summary["policy"]]
    shown.update({k: summary[k] for k in ("import_check", "predictions") if k in summary})
    results.print_json(json.dumps(shown, default=str))
    if summary.get("kind") == "stock":
        log.warning("the exact path refused this model; hls4ml's own converter takes it: %s", summary["label"])
    if "input_format" in summary:
        log.info("input format: %s (firmware inputs are words of it)", summary["input_format"])
    log.info("wrote %s; next: trigger-ml compile %s --out firmware/<name>", out, out)


@app.command("export")
def export_cmd(
    run: Annotated[Path, typer.Argument(help="training run (--onnx) or compiled model directory (--cmssw)")],
    onnx: Annotated[
        bool,
        typer.Option(
            "--onnx", help="write float.onnx (the float twin) and model.qonnx.onnx (the quantized model as QONNX)"
        ),
    ] = False,
    out: Annotated[Path | None, typer.Option(help="output directory (default <run>/onnx)")] = None,
    cmssw: Annotated[
        Path | None,
        typer.Option(
            "--cmssw",
            help="write the CMSSW plugin's sources, Makefile, BuildFile.xml and README into DIR/<model>/ "
            "(argument: a compiled model directory)",
        ),
    ] = None,
) -> None:
    """Export a trained run: --onnx writes the float twin as ONNX and the quantized model as QONNX, and
    checks them (float: onnxruntime vs Keras within 1e-6; QONNX: qonnx's executor vs Keras, exact).
    Or a compiled model: --cmssw DIR writes its CMSSW plugin as a source tree (docs/cmssw.md)."""
    import json

    if cmssw is not None:
        from trigger_ml.compile.cmssw_export import export_cmssw

        with console.status(f"exporting {run} for CMSSW"):
            dest = export_cmssw(run, cmssw)
        log.info("wrote %s (make; README.md shows the CMSSW lines that load it)", dest)
        return
    if not onnx:
        raise TriggerMLError("choose an export format", "trigger-ml export <run> --onnx, or <firmware> --cmssw DIR")
    from trigger_ml.interop.onnx_export import export_run
    from trigger_ml.layout import RunDir

    with console.status(f"exporting {run} as ONNX"):
        summary = export_run(run, out or RunDir(run).onnx)
    results.print_json(json.dumps(summary, default=str))
