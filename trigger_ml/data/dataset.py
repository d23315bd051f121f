"""The in-memory data set every stage consumes: windows, features, labels and truth."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from trigger_ml import __version__
from trigger_ml.data.features import FEATURE_NAMES, FEATURES, compute_features
from trigger_ml.data.simulate import BACKGROUND_CLASS, SIGNAL_CLASS, Windows
from trigger_ml.errors import SchemaError


@dataclass
class Dataset:
    """Windows of integer counts with their features, labels and (where known) truth."""

    images: np.ndarray  # (n, N, N) uint16 counts of meta["lsb_gev"]
    features: np.ndarray  # (n, F) float32, FEATURE_NAMES order, on their fixed-point grids
    labels: np.ndarray  # (n,) int8 index into class_names
    class_names: tuple[str, ...]
    pt: np.ndarray  # (n,) float32 truth pT (GeV); NaN where unknown
    impact: np.ndarray  # (n, 2) float32 truth impact (ieta, iphi) from the seed centre; NaN if unknown
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lsb_gev(self) -> float:
        return float(self.meta["lsb_gev"])

    def mask(self, *names: str) -> np.ndarray:
        """Boolean mask of the windows in any of the named classes."""
        unknown = [n for n in names if n not in self.class_names]
        if unknown:
            raise SchemaError(
                f"class {unknown[0]!r} is not in this data set (classes: {list(self.class_names)})",
                "simulate it or pick one of the classes present",
            )
        idx = [self.class_names.index(n) for n in names]
        return np.isin(self.labels, idx)

    @property
    def is_signal(self) -> np.ndarray:
        return self.mask(SIGNAL_CLASS)

    @property
    def is_background(self) -> np.ndarray:
        return self.mask(BACKGROUND_CLASS)

    def subset(self, index: np.ndarray | slice) -> Dataset:
        return replace(
            self,
            images=self.images[index],
            features=self.features[index],
            labels=self.labels[index],
            pt=self.pt[index],
            impact=self.impact[index],
        )


def from_windows(w: Windows) -> Dataset:
    """Compute the features of simulated windows and attach their metadata."""
    cfg = w.config
    meta = {
        "format": "trigger-ml-ecal",
        "format_version": 1,
        "trigger_ml_version": __version__,
        "seed": w.seed,
        "pu": cfg.pu,
        "lsb_gev": cfg.lsb_gev,
        "noise_gev": cfg.noise_gev,
        "bits": cfg.bits,
        "window": cfg.window,
        "sim_config": cfg.to_dict(),
    }
    return Dataset(
        w.images,
        compute_features(w.images, cfg.lsb_gev),
        w.labels,
        w.class_names,
        w.pt,
        w.impact,
        meta,
    )


def validate(ds: Dataset, source: str) -> Dataset:
    """Check shapes, types and ranges; raise one SchemaError naming the first bad field."""
    n = len(ds.labels)
    img = ds.images
    if img.ndim != 3 or img.shape[1] != img.shape[2] or img.shape[1] < 5 or img.shape[1] % 2 == 0:
        raise SchemaError(
            f"{source}: field 'images' must have shape (n, N, N) with odd N >= 5, got {img.shape}",
            "store one square window of crystals per event, seed crystal at the centre",
        )
    if not np.issubdtype(img.dtype, np.integer):
        raise SchemaError(
            f"{source}: field 'images' must hold integer counts of the LSB, got dtype {img.dtype}",
            "digitise energies to trigger-primitive counts (E / LSB) before writing",
        )
    if len(img) != n:
        raise SchemaError(f"{source}: 'images' has {len(img)} rows but 'labels' has {n}")
    if img.size and (img.min() < 0 or img.max() > np.iinfo(np.uint16).max):
        raise SchemaError(f"{source}: field 'images' has counts outside 0..65535")
    if not np.issubdtype(ds.labels.dtype, np.integer):
        raise SchemaError(f"{source}: field 'labels' must be integers, got dtype {ds.labels.dtype}")
    if n and (ds.labels.min() < 0 or ds.labels.max() >= len(ds.class_names)):
        raise SchemaError(
            f"{source}: field 'labels' has values outside 0..{len(ds.class_names) - 1}",
            f"labels index class_names {list(ds.class_names)}",
        )
    if ds.features.shape != (n, len(FEATURES)):
        raise SchemaError(
            f"{source}: field 'features' must have shape ({n}, {len(FEATURES)}), got {ds.features.shape}",
            f"columns are {list(FEATURE_NAMES)}; omit the field to compute it from the images",
        )
    for name, arr in (("features", ds.features), ("pt", ds.pt), ("impact", ds.impact)):
        if name == "features" and not np.isfinite(arr).all():
            raise SchemaError(f"{source}: field 'features' contains NaN or infinity")
        if not np.issubdtype(arr.dtype, np.floating):
            raise SchemaError(f"{source}: field {name!r} must be floating point, got {arr.dtype}")
    if "lsb_gev" not in ds.meta or not float(ds.meta["lsb_gev"]) > 0:
        raise SchemaError(f"{source}: metadata 'lsb_gev' (energy of one count, GeV) is missing")
    return ds
