"""The train stage: (card, data) -> run directory with the quantized model and its float twin.

1. Split the windows (seeded): test, validation and training parts. A classifier trains on its
   signal and background classes; an anomaly model on its normal classes only.
2. The float twin trains with early stopping and the card's pruning schedule.
3. The quantized model starts from the twin's weights and pruning masks (pruned weights stay
   exactly zero) and is trained quantization-aware with the same settings, with the EBOPs
   penalty beta ramped log-linearly; then hgq2's `trace_minmax` fixes the integer ranges.
4. Metrics on the test part, plots, and the run directory is written atomically:
   model.keras, float.keras, card.yaml, metrics.json, history.json, plots/*.png.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from trigger_ml.atomic import atomic_dir, check_destination
from trigger_ml.config import ModelCard
from trigger_ml.data.dataset import Dataset
from trigger_ml.errors import SchemaError
from trigger_ml.layout import RunDir
from trigger_ml.train import metrics as M
from trigger_ml.train.models import (
    build_float,
    build_quantized,
    copy_weights,
    input_masks,
    model_inputs,
    reconstruction_model,
    set_score_weights,
    trainable_layers,
)
from trigger_ml.train.prune import MagnitudePruning, kernel_sparsity

log = logging.getLogger(__name__)


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split(ds: Dataset, card: ModelCard) -> Split:
    t = card.training
    rng = np.random.default_rng(t.seed)
    n = len(ds) if t.max_events is None else min(len(ds), t.max_events)
    idx = rng.permutation(len(ds))[:n]
    n_test = int(round(t.test_fraction * n))
    n_val = int(round(t.validation_fraction * (n - n_test)))
    test, val, train = idx[:n_test], idx[n_test : n_test + n_val], idx[n_test + n_val :]
    train_classes = card.classes
    keep = ds.mask(*train_classes)
    return Split(np.sort(train[keep[train]]), np.sort(val[keep[val]]), np.sort(test))


def check_data(card: ModelCard, ds: Dataset) -> None:
    missing = [c for c in card.classes if c not in ds.class_names]
    if missing:
        raise SchemaError(
            f"data has no class {missing[0]!r} needed by model {card.name!r}",
            f"classes present: {list(ds.class_names)}",
        )
    if card.task == "classifier" and len(card.classes) != 2:
        raise SchemaError(f"{card.name}: a classifier names two classes (signal, background)")
    if card.input != "features" and ds.images.shape[1] != int(ds.meta.get("window", ds.images.shape[1])):
        raise SchemaError(f"data: metadata 'window' disagrees with images of shape {ds.images.shape[1:]}")


class _RichEpochs:
    """A Keras callback showing one progress bar per fit (epochs, loss, val_loss)."""

    def __new__(cls, description: str, epochs: int):
        import keras
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from trigger_ml.progress import console

        class Cb(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.prog = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(),
                    console=console,
                    disable=not console.is_terminal,
                )
                self.prog.start()
                self.tid = self.prog.add_task(description, total=epochs, info="")

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                info = " ".join(f"{k}={v:.4g}" for k, v in logs.items() if k in ("loss", "val_loss", "sparsity"))
                self.prog.update(self.tid, advance=1, info=info)

            def on_train_end(self, logs=None):
                self.prog.stop()

        return Cb()


def _targets(card: ModelCard, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return x if card.task == "anomaly" else labels[:, None].astype(np.float32)


def _fit(card: ModelCard, model, fit_model, data, description: str, extra_callbacks: list, is_quantized: bool):
    import keras

    t = card.training
    (xt, yt), (xv, yv) = data
    loss = "mse" if card.task == "anomaly" else keras.losses.BinaryCrossentropy(from_logits=True)
    fit_model.compile(
        optimizer=keras.optimizers.Adam(t.learning_rate), loss=loss, metrics=["mse"] if card.task == "anomaly" else None
    )
    callbacks = [
        keras.callbacks.EarlyStopping(patience=t.patience, restore_best_weights=True, monitor="val_loss"),
        *extra_callbacks,
        _RichEpochs(description, t.epochs),
    ]
    if is_quantized:
        from hgq.utils.sugar import BetaScheduler, FreeEBOPs, PieceWiseSchedule

        b0, b1 = card.quantization.beta
        callbacks += [FreeEBOPs(), BetaScheduler(PieceWiseSchedule([(0, b0, "log"), (t.epochs, b1, "constant")]))]
    hist = fit_model.fit(
        xt,
        yt,
        validation_data=(xv, yv),
        epochs=t.epochs,
        batch_size=t.batch_size,
        callbacks=callbacks,
        verbose=0,
        shuffle=True,
    )
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def _pruner(card: ModelCard, n_train: int, initial=None) -> MagnitudePruning:
    t, p = card.training, card.pruning
    steps = t.epochs * math.ceil(n_train / t.batch_size)
    targets = {name: p.target(name) for name in trainable_layers(card)}
    return MagnitudePruning(targets, int(p.begin_fraction * steps), int(p.end_fraction * steps), p.frequency, initial)


def predict(model, x: np.ndarray) -> np.ndarray:
    """Raw outputs of a Keras model, one row per window (the quantized level's `predict`)."""
    return np.asarray(model.predict(x, batch_size=8192, verbose=0)).reshape(len(x), -1)


def evaluate(card: ModelCard, score: np.ndarray, ds: Dataset) -> dict[str, Any]:
    if card.task == "classifier":
        return M.classifier_metrics(score, ds, card.classes[0], card.classes[1])
    return M.anomaly_metrics(score, ds, card.classes)


def train(card: ModelCard, ds: Dataset, out: Path) -> dict[str, Any]:
    """Train a card's float twin and quantized model; write the run directory atomically."""
    import keras
    from hgq.utils import trace_minmax

    check_data(card, ds)
    check_destination(Path(out), RunDir.OUTPUT)  # before training, not after
    sp = split(ds, card)
    x = model_inputs(card, ds)
    labels = ds.mask(card.classes[0]).astype(np.float32)
    data = (
        (x[sp.train], _targets(card, x[sp.train], labels[sp.train])),
        (x[sp.val], _targets(card, x[sp.val], labels[sp.val])),
    )
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    keras.utils.set_random_seed(card.training.seed)
    fmodel = build_float(card, ds.meta)
    f_fit = reconstruction_model(fmodel) if card.task == "anomaly" else fmodel
    fpruner = _pruner(card, len(sp.train), initial=input_masks(card, ds.meta))
    hist_f = _fit(card, fmodel, f_fit, data, f"{card.name}: float twin", [fpruner], False)
    if card.task == "anomaly":
        set_score_weights(card, fmodel, x[sp.train])
    timings["float_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    keras.utils.set_random_seed(card.training.seed)
    qmodel = build_quantized(card, ds.meta)
    qmodel(x[:1])
    copy_weights(fmodel, qmodel, card)
    q_fit = reconstruction_model(qmodel) if card.task == "anomaly" else qmodel
    qpruner = _pruner(card, len(sp.train), initial=dict(fpruner.masks))
    hist_q = _fit(card, qmodel, q_fit, data, f"{card.name}: quantized (QAT)", [qpruner], True)
    trace_minmax(qmodel, x[sp.train], batch_size=8192)
    if card.task == "anomaly":
        score_weights = set_score_weights(card, qmodel, x[sp.train])
    timings["quantized_s"] = time.perf_counter() - t0

    test = ds.subset(sp.test)
    q_score = predict(qmodel, x[sp.test])[:, 0]
    f_score = predict(fmodel, x[sp.test])[:, 0]
    mq, mf = evaluate(card, q_score, test), evaluate(card, f_score, test)
    metrics: dict[str, Any] = {
        "model": card.name,
        "task": card.task,
        "quantized": mq,
        "float": mf,
        "sparsity": kernel_sparsity(qmodel),
        "sparsity_target": {n: card.pruning.target(n) for n in trainable_layers(card)},
        "epochs_run": {"float": len(hist_f["loss"]), "quantized": len(hist_q["loss"])},
        "n_train": int(len(sp.train)),
        "n_val": int(len(sp.val)),
        "n_test": int(len(sp.test)),
        "data": {k: ds.meta.get(k) for k in ("seed", "pu", "lsb_gev", "noise_gev", "bits", "window")},
        "timings_s": timings,
        "ebops": float(hist_q.get("ebops", [0.0])[-1]),
    }
    if card.task == "classifier":
        metrics["delta"] = {
            "auc": mq["auc"] - mf["auc"],
            "efficiency": mq["efficiency_at_baseline_fake_rate"] - mf["efficiency_at_baseline_fake_rate"],
        }
    else:
        metrics["delta"] = {c: {"auc": v["auc"] - mf["per_class"][c]["auc"]} for c, v in mq["per_class"].items()}
        metrics["score_weights"] = [float(w) for w in score_weights]

    from trigger_ml.train.plots import plot_run

    with atomic_dir(out, kind=RunDir.OUTPUT) as tmp:
        qmodel.save(tmp / "model.keras")
        fmodel.save(tmp / "float.keras")
        (tmp / "card.yaml").write_text(yaml.safe_dump(card.to_dict(), sort_keys=False))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (tmp / "history.json").write_text(json.dumps({"float": hist_f, "quantized": hist_q}, indent=2))
        np.savez_compressed(tmp / "split.npz", train=sp.train, val=sp.val, test=sp.test)
        plot_run(card, qmodel, hist_f, hist_q, q_score, f_score, test, metrics, tmp / "plots")
    return metrics


def load_model(path: str | Path):
    """Load a saved model (`import hgq` registers its layers; safe_mode stays on)."""
    import hgq  # noqa: F401
    import keras
    import qkeras.quantizers  # noqa: F401  registers hgq2's QKeras-style quantizer configs (leaves hgq.layers alone)

    path = Path(path)
    if not path.exists():
        raise SchemaError(f"{path}: no such model file", "train it with `trigger-ml train`")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        raise SchemaError(
            f"{path}: cannot load the model ({type(exc).__name__}: {exc})", "re-create it with `trigger-ml train`"
        ) from exc
