"""Data plots: feature distributions and mean image per class, baseline efficiency vs pT."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trigger_ml.data.baseline import baseline_pass
from trigger_ml.data.dataset import Dataset
from trigger_ml.data.features import FEATURE_NAMES, FEATURES
from trigger_ml.plotting import plt, save


def plot_features(ds: Dataset, path: Path) -> Path:
    cols = 4
    rows = int(np.ceil(len(FEATURE_NAMES) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows))
    for i, (ax, name) in enumerate(zip(axes.flat, FEATURE_NAMES)):
        x = ds.features[:, i]
        hi = float(np.quantile(x, 0.995)) if len(x) else 1.0
        bins = np.linspace(0.0, max(hi, 1e-3), 60)
        for k, cls in enumerate(ds.class_names):
            sel = x[ds.labels == k]
            if len(sel):
                ax.hist(np.clip(sel, 0, bins[-1]), bins=bins, histtype="step", density=True, label=cls)
        ax.set_xlabel(f"{name}  [{FEATURES[name]}]")
        ax.set_yscale("log")
    for ax in list(axes.flat)[len(FEATURE_NAMES) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"Shower-shape features per class (PU {ds.meta.get('pu', '?')})")
    return save(fig, path)


def plot_mean_images(ds: Dataset, path: Path) -> Path:
    k = len(ds.class_names)
    fig, axes = plt.subplots(1, k, figsize=(3.2 * k, 3.2), squeeze=False)
    for i, (ax, cls) in enumerate(zip(axes[0], ds.class_names)):
        sel = ds.images[ds.labels == i]
        mean = sel.mean(axis=0) * ds.lsb_gev if len(sel) else np.zeros(ds.images.shape[1:])
        im = ax.imshow(np.log10(np.maximum(mean, 1e-3)), cmap="viridis", vmin=-2.5, vmax=1.5)
        ax.set_title(f"{cls} (n={len(sel)})")
        ax.set_xlabel("iphi")
        ax.set_ylabel("ieta")
    fig.colorbar(im, ax=axes[0].tolist(), label="log10 mean ET per crystal [GeV]")
    return save(fig, path)


def plot_baseline_vs_pt(ds: Dataset, path: Path) -> Path:
    decision = baseline_pass(ds.features)
    pt = ds.features[:, FEATURE_NAMES.index("et_3x5")]
    edges = np.array([5, 7.5, 10, 15, 20, 30, 40, 60, 80, 100, 130])
    centres = 0.5 * (edges[1:] + edges[:-1])
    fig, ax = plt.subplots(figsize=(6, 4))
    for mask, label in ((ds.is_signal, "eg efficiency"), (ds.is_background, "pu fake rate")):
        idx = np.digitize(pt[mask], edges) - 1
        ok = (idx >= 0) & (idx < len(centres))
        num = np.bincount(idx[ok], weights=decision[mask][ok], minlength=len(centres))
        den = np.bincount(idx[ok], minlength=len(centres))
        eff = np.divide(num, den, out=np.full(len(centres), np.nan), where=den > 0)
        err = np.sqrt(np.divide(eff * (1 - eff), den, out=np.zeros(len(centres)), where=den > 0))
        ax.errorbar(centres, eff, yerr=err, marker="o", ls="", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("cluster ET (3x5) [GeV]")
    ax.set_ylabel("fraction passing the cut-based ID")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, path)


def plot_all(ds: Dataset, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [
        plot_features(ds, out / "features.png"),
        plot_mean_images(ds, out / "mean_images.png"),
        plot_baseline_vs_pt(ds, out / "baseline_vs_pt.png"),
    ]
