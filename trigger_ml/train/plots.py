"""Training plots: loss curves, ROC with the baseline marked, anomaly scores, weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.config import ModelCard
from trigger_ml.data.dataset import Dataset
from trigger_ml.plotting import plt, save
from trigger_ml.train.metrics import roc


def plot_loss(hist_f: dict, hist_q: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, h in (("float", hist_f), ("quantized", hist_q)):
        ax.plot(h["loss"], label=f"{name} train")
        ax.plot(h["val_loss"], ls="--", label=f"{name} validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (quantized: includes beta x EBOPs)")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    return save(fig, path)


def plot_roc(card: ModelCard, q: np.ndarray, f: np.ndarray, ds: Dataset, m: dict[str, Any], path: Path) -> Path:
    s, b = ds.mask(card.classes[0]), ds.mask(card.classes[1])
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, score in (("quantized", q), ("float", f)):
        fpr, tpr = roc(score[s], score[b])
        ax.plot(fpr, tpr, label=f"{name} (AUC {m[name]['auc']:.4f})")
    mq = m["quantized"]
    ax.plot([mq["baseline_fake_rate"]], [mq["baseline_efficiency"]], "k*", ms=12, label="cut-based baseline")
    ax.plot(
        [mq["baseline_fake_rate"]],
        [mq["efficiency_at_baseline_fake_rate"]],
        "ro",
        label=f"quantized at baseline fake rate ({mq['efficiency_at_baseline_fake_rate']:.3f})",
    )
    ax.set_xscale("log")
    ax.set_xlim(1e-3, 1)
    ax.set_xlabel(f"{card.classes[1]} fake rate")
    ax.set_ylabel(f"{card.classes[0]} efficiency")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, path)


def plot_anomaly(card: ModelCard, q: np.ndarray, ds: Dataset, m: dict[str, Any], out: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(6, 4))
    lo, hi = np.quantile(q, [0.0, 0.999])
    bins = np.linspace(lo, max(hi, lo + 1e-6), 80)
    for i, cls in enumerate(ds.class_names):
        sel = q[ds.labels == i]
        if len(sel):
            ax.hist(np.clip(sel, bins[0], bins[-1]), bins=bins, histtype="step", density=True, label=cls)
    ax.set_yscale("log")
    ax.set_xlabel("anomaly score (quantized, in the graph)")
    ax.legend()
    p1 = save(fig, out / "anomaly_scores.png")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    bkg = q[ds.mask(*card.classes)]
    for cls, v in m["quantized"]["per_class"].items():
        fpr, tpr = roc(q[ds.mask(cls)], bkg)
        ax.plot(fpr, tpr, label=f"{cls} (AUC {v['auc']:.3f})")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_xlabel("false-positive rate on ordinary traffic (eg + pu)")
    ax.set_ylabel("true-positive rate")
    ax.legend()
    ax.grid(alpha=0.3)
    return [p1, save(fig, out / "anomaly_roc.png")]


def plot_weights(model, m: dict[str, Any], path: Path) -> Path:
    from keras import ops

    layers = [lay for lay in model.layers if hasattr(lay, "qkernel") and lay.trainable]
    fig, axes = plt.subplots(2, len(layers), figsize=(3.6 * len(layers), 6), squeeze=False)
    for j, lay in enumerate(layers):
        qk = ops.convert_to_numpy(lay.qkernel).ravel()
        q = lay.kq.quantizer
        k, i, f = (ops.convert_to_numpy(q.bw_mapper.bw_to_x(v, lay.qkernel.shape)).ravel() for v in q.kif)
        bits = k + i + f
        axes[0, j].hist(qk[qk != 0], bins=60)
        axes[0, j].set_title(f"{lay.name}: sparsity {m['sparsity'].get(lay.name, 0):.2f}", fontsize=9)
        axes[0, j].set_xlabel("non-zero quantized weights")
        axes[1, j].hist(bits, bins=np.arange(-0.5, bits.max() + 1.5, 1))
        axes[1, j].set_xlabel("weight bit width (k + i + f)")
    return save(fig, path)


def plot_run(card, qmodel, hist_f, hist_q, q, f, ds, m, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [plot_loss(hist_f, hist_q, out / "loss.png"), plot_weights(qmodel, m, out / "weights.png")]
    if card.task == "classifier":
        paths.append(plot_roc(card, q, f, ds, m, out / "roc.png"))
    else:
        paths += plot_anomaly(card, q, ds, m, out)
    return paths
