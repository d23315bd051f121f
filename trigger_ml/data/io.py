"""Read and write data sets: our HDF5 format, NPZ, and users' ROOT TTrees (uproot).

HDF5 layout (`format` = "trigger-ml-ecal", `format_version` = 1):

    /images    uint16 (n, N, N)  counts of `lsb_gev` (axis 1 ieta, axis 2 iphi), seed at centre
    /features  float32 (n, F)    attrs: names, formats (see trigger_ml.data.features)
    /labels    int8 (n,)         attrs: class_names
    /pt        float32 (n,)      truth pT, GeV (NaN if unknown)
    /impact    float32 (n, 2)    truth impact point, crystals from the seed centre (NaN if unknown)
    attrs: format, format_version, trigger_ml_version, seed, pu, lsb_gev, noise_gev, bits,
           window, sim_config (JSON)

NPZ: the same array names as top-level entries, plus `class_names` (strings) and `lsb_gev`.
Only `images`, `labels`, `class_names` and `lsb_gev` are required; `features` is computed from
the images when absent.

ROOT: a `RootSchema` maps our fields to branch names of one TTree (see `RootSchema`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from trigger_ml.atomic import atomic_file
from trigger_ml.config import load_yaml
from trigger_ml.data.dataset import Dataset, validate
from trigger_ml.data.features import FEATURE_NAMES, FEATURES, compute_features
from trigger_ml.errors import SchemaError

FORMAT = "trigger-ml-ecal"
FORMAT_VERSION = 1
_META_SCALARS = ("seed", "pu", "lsb_gev", "noise_gev", "bits", "window")


# --------------------------------------------------------------------------- HDF5


def write_h5(ds: Dataset, path: str | Path) -> Path:
    """Write `ds` atomically; the same data set gives a byte-identical file."""
    path = Path(path)
    opts: dict[str, Any] = {"track_times": False, "compression": "gzip", "compression_opts": 4}
    with atomic_file(path) as tmp:
        with h5py.File(_create_untimed(tmp), track_order=True) as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["trigger_ml_version"] = str(ds.meta.get("trigger_ml_version", ""))
            for k in _META_SCALARS:
                if k in ds.meta:
                    f.attrs[k] = ds.meta[k]
            f.attrs["sim_config"] = json.dumps(ds.meta.get("sim_config", {}), sort_keys=True)
            f.create_dataset("images", data=ds.images.astype(np.uint16), chunks=True, **opts)
            feats = f.create_dataset("features", data=ds.features.astype(np.float32), **opts)
            feats.attrs["names"] = list(FEATURE_NAMES)
            feats.attrs["formats"] = [str(FEATURES[k]) for k in FEATURE_NAMES]
            lab = f.create_dataset("labels", data=ds.labels.astype(np.int8), **opts)
            lab.attrs["class_names"] = list(ds.class_names)
            f.create_dataset("pt", data=ds.pt.astype(np.float32), **opts)
            f.create_dataset("impact", data=ds.impact.astype(np.float32), **opts)
    return path


def _create_untimed(path: Path):
    """A new HDF5 file whose objects, the root group included, carry no creation times (h5py's
    `track_times` covers datasets only): the same data then gives the same bytes."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fcpl.set_link_creation_order(h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED)
    fcpl.set_attr_creation_order(h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED)
    return h5py.h5f.create(str(path).encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl)


# metadata a file may carry: type and allowed range (a bad value is one error naming it)
META_RULES: dict[str, tuple[type, float, float]] = {
    "seed": (int, 0, 2**63 - 1),
    "pu": (float, 0, 1e4),
    "lsb_gev": (float, 1e-6, 1e3),
    "noise_gev": (float, 0, 1e3),
    "bits": (int, 1, 16),
    "window": (int, 5, 99),
}
MEMORY_FRACTION = 0.5  # a data set may take at most this share of the available memory once read


def check_meta(meta: dict[str, Any], source: str) -> dict[str, Any]:
    """The file's metadata, each known key of the right type and in range."""
    out = dict(meta)
    for key, (tp, lo, hi) in META_RULES.items():
        if key not in meta:
            continue
        v = meta[key]
        if isinstance(v, bytes):
            v = v.decode(errors="replace")
        try:
            if isinstance(v, bool) or (tp is int and float(v) != int(float(v))):
                raise ValueError
            v = tp(v) if tp is float else int(float(v))
        except (TypeError, ValueError):
            raise SchemaError(
                f"{source}: metadata {key!r} is {meta[key]!r}, not {'an integer' if tp is int else 'a number'}",
                f"allowed: {tp.__name__} in [{lo:g}, {hi:g}]",
            ) from None
        if not lo <= v <= hi or v != v:
            raise SchemaError(f"{source}: metadata {key!r} is {v!r}: out of range", f"allowed: [{lo:g}, {hi:g}]")
        out[key] = v
    if "window" in out and out["window"] % 2 == 0:
        raise SchemaError(f"{source}: metadata 'window' is {out['window']}: not odd", "the seed crystal is the centre")
    return out


def check_size(n_events: int, per_event_bytes: int, source: str) -> None:
    """Refuse, before allocating, a data set that would not fit in memory."""
    need = n_events * per_event_bytes
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if need > MEMORY_FRACTION * avail:
        raise SchemaError(
            f"{source}: {n_events:,} windows need about {need / 2**30:.1f} GiB once read, more than "
            f"{MEMORY_FRACTION:.0%} of the {avail / 2**30:.1f} GiB available",
            "use a smaller file (or a subset of it)",
        )


def _need(f: h5py.File, name: str, path: Path) -> np.ndarray:
    if name not in f:
        raise SchemaError(
            f"{path}: field {name!r} is missing (found: {sorted(f.keys())})",
            "write the file with `trigger-ml data simulate` or add the field (see trigger_ml.data.io)",
        )
    return f[name][()]


def read_h5(path: str | Path) -> Dataset:
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such file", "check the path or run `trigger-ml data simulate`") from None
    except OSError as exc:
        raise SchemaError(f"{path}: not a readable HDF5 file ({exc})", "re-create the file") from exc
    with f:
        if f.attrs.get("format") != FORMAT:
            raise SchemaError(
                f"{path}: attribute 'format' is {f.attrs.get('format')!r}, expected {FORMAT!r}",
                "write the file with trigger_ml.data.io.write_h5, or read NPZ/ROOT with a schema",
            )
        if "images" in f and "labels" in f:
            shape = f["images"].shape
            check_size(
                int(f["labels"].shape[0]) if f["labels"].shape else 0,
                int(np.prod(shape[1:], dtype=np.int64)) * 10 + 64,
                str(path),
            )
        images = _need(f, "images", path)
        labels = _need(f, "labels", path)
        if "class_names" not in f["labels"].attrs:
            raise SchemaError(f"{path}: attribute 'class_names' of 'labels' is missing")
        class_names = tuple(str(c) for c in f["labels"].attrs["class_names"])
        features = _need(f, "features", path)
        names = [str(n) for n in f["features"].attrs.get("names", [])]
        if names != list(FEATURE_NAMES):
            raise SchemaError(
                f"{path}: feature columns {names} differ from {list(FEATURE_NAMES)}",
                "re-create the file with this version of trigger-ml",
            )
        n = len(labels)
        pt = f["pt"][()] if "pt" in f else np.full(n, np.nan, np.float32)
        impact = f["impact"][()] if "impact" in f else np.full((n, 2), np.nan, np.float32)
        meta: dict[str, Any] = check_meta({k: _scalar(f.attrs[k]) for k in _META_SCALARS if k in f.attrs}, str(path))
        meta.update(format=FORMAT, format_version=int(f.attrs["format_version"]))
        meta["trigger_ml_version"] = str(f.attrs.get("trigger_ml_version", ""))
        meta["sim_config"] = _sim_config(f.attrs.get("sim_config", "{}"), path)
        meta["source"] = str(path)
    return validate(Dataset(images, features, labels, class_names, pt, impact, meta), str(path))


def _scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") and getattr(v, "size", 1) == 1 else v


def _sim_config(raw: Any, path: Path) -> dict[str, Any]:
    """The simulator's configuration stored with the windows (attribute 'sim_config'): a JSON object."""
    raw = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        if not isinstance(raw, str) or len(raw) > 1 << 20:
            raise ValueError(f"a {type(raw).__name__} of {len(raw) if isinstance(raw, str) else '?'} characters")
        cfg = json.loads(raw)
        if not isinstance(cfg, dict):
            raise ValueError(f"a JSON {type(cfg).__name__}, not an object")
    except (ValueError, RecursionError) as exc:
        raise SchemaError(
            f"{path}: attribute 'sim_config' is not the simulator's configuration as a JSON object ({str(exc)[:120]})",
            "write the file with `trigger-ml data simulate`, or delete the attribute 'sim_config'",
        ) from None
    return cfg


# --------------------------------------------------------------------------- NPZ, ROOT


def _assemble(fields: dict[str, np.ndarray], class_names: Any, lsb_gev: Any, source: str) -> Dataset:
    for req in ("images", "labels"):
        if req not in fields:
            raise SchemaError(f"{source}: field {req!r} is missing", "see trigger_ml.data.io for the schema")
    if class_names is None or len(class_names) == 0:
        raise SchemaError(f"{source}: field 'class_names' is missing", "list the class of each label index")
    if lsb_gev is None:
        raise SchemaError(f"{source}: field 'lsb_gev' is missing", "give the energy of one count in GeV")
    images = np.asarray(fields["images"])
    n = len(images)
    if images.ndim == 2:  # flattened windows
        side = int(round(np.sqrt(images.shape[1])))
        if side * side != images.shape[1]:
            raise SchemaError(f"{source}: field 'images' has {images.shape[1]} crystals, not a square")
        images = images.reshape(n, side, side)
    labels = np.asarray(fields["labels"])
    if n == 0:
        raise SchemaError(f"{source}: no windows (field 'images' is empty)", "give a file with at least one window")
    meta = {**check_meta({"lsb_gev": lsb_gev}, source), "source": source}
    probe = Dataset(
        images,
        np.zeros((n, len(FEATURES)), np.float32),
        labels,
        tuple(str(c) for c in class_names),
        np.asarray(fields.get("pt", np.full(n, np.nan)), dtype=np.float32),
        np.asarray(fields.get("impact", np.full((n, 2), np.nan)), dtype=np.float32),
        meta,
    )
    validate(probe, source)  # images and labels checked before features are computed
    probe.images = images.astype(np.uint16)
    probe.labels = labels.astype(np.int8)
    if "features" in fields:
        probe.features = np.asarray(fields["features"])
        if not np.issubdtype(probe.features.dtype, np.floating):
            raise SchemaError(f"{source}: field 'features' must be floating point")
        probe.features = probe.features.astype(np.float32)
    else:
        probe.features = compute_features(probe.images, float(lsb_gev))
    return validate(probe, source)


def open_npz(path: str | Path, fix: str = "see trigger_ml.data.io", option: str = "the path") -> Any:
    """An .npz archive opened without pickle (its arrays are read later, after `npz_shapes`); one
    SchemaError for a missing file (`option` names where the path came from), an unreadable one or
    a single .npy array (`fix`)."""
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such file", f"check {option}") from None
    except (OSError, ValueError, EOFError) as exc:
        raise SchemaError(f"{path}: not a readable NPZ file ({exc})", fix) from exc
    if not hasattr(z, "files"):
        raise SchemaError(f"{path}: a single array, not an NPZ archive of named fields", fix)
    return z


def read_npz(path: str | Path) -> Dataset:
    path = Path(path)
    with open_npz(path) as z:
        shapes = npz_shapes(z, path)  # from the array headers: nothing is read before the checks
        if "images" in shapes and "labels" in shapes:
            n = shapes["labels"][0] if shapes["labels"] else 0
            check_size(n, 10 * int(np.prod(shapes["images"][1:], dtype=np.int64)) + 64, str(path))
        try:
            fields = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as exc:
            raise SchemaError(f"{path}: a field cannot be read ({exc})", "write the file with numpy.savez") from exc
    cn = fields.pop("class_names", None)
    lsb = fields.pop("lsb_gev", None)
    return _assemble(
        fields,
        None if cn is None else [str(c) for c in np.atleast_1d(cn)],
        None if lsb is None else _scalar(lsb),
        str(path),
    )


_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def npz_shapes(z: Any, path: Path) -> dict[str, tuple[int, ...]]:
    """Each field's shape from its .npy header; an object array (pickled Python objects, never
    loaded) or an unreadable header is one error naming the field."""
    out: dict[str, tuple[int, ...]] = {}
    members = set(z.zip.namelist())
    for name in z.files:
        try:
            with z.zip.open(f"{name}.npy" if f"{name}.npy" in members else name) as fh:
                version = np.lib.format.read_magic(fh)
                shape, _, dtype = _NPY_HEADERS[version](fh)
        except Exception as exc:  # zipfile, numpy and the header parser raise many types on a bad member
            raise SchemaError(
                f"{path}: field {name!r} is not a readable array ({type(exc).__name__}: {exc})",
                "write the file with numpy.savez",
            ) from exc
        if dtype.hasobject:
            raise SchemaError(
                f"{path}: field {name!r} is an object array (dtype {dtype}): pickled Python objects are never loaded",
                "store numbers and strings as plain numpy arrays (numpy.savez of int/float/str arrays)",
            )
        out[name] = tuple(int(d) for d in shape)
    return out


def write_npz(ds: Dataset, path: str | Path) -> Path:
    path = Path(path)
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                images=ds.images,
                features=ds.features,
                labels=ds.labels,
                pt=ds.pt,
                impact=ds.impact,
                class_names=np.array(ds.class_names),
                lsb_gev=np.float64(ds.lsb_gev),
            )
    return path


@dataclass(frozen=True)
class RootSchema:
    """Where our fields live in a user's ROOT file.

    `branches` maps our field names to branch names: `images` (required; a fixed-size array of
    N*N or N x N integer counts per entry), `labels` (required; integer class index),
    optional `features` (one branch per feature, in FEATURE_NAMES order, as a list), `pt`,
    `impact_ieta`, `impact_iphi`. `class_names` names the label indices; `lsb_gev` is the
    energy of one count.
    """

    tree: str
    branches: dict[str, Any]
    class_names: tuple[str, ...]
    lsb_gev: float
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RootSchema:
        for key in ("tree", "branches", "class_names", "lsb_gev"):
            if key not in d:
                raise SchemaError(f"ROOT schema: key {key!r} is missing", "see trigger_ml.data.io.RootSchema")
        return cls(d["tree"], dict(d["branches"]), tuple(d["class_names"]), float(d["lsb_gev"]))


def load_root_schema(path: str | Path) -> RootSchema:
    """A ROOT schema from its YAML file (README, Data: tree, branches, class_names, lsb_gev)."""
    d = load_yaml(path, "ROOT schema", "write the YAML schema shown in README, Data")
    if not isinstance(d, dict):
        raise SchemaError(f"{path}: the schema must be a mapping (tree, branches, class_names, lsb_gev)")
    if not isinstance(d.get("branches", {}), dict) or not isinstance(d.get("class_names", []), list):
        raise SchemaError(f"{path}: 'branches' must be a mapping and 'class_names' a list")
    try:
        return RootSchema.from_dict(d)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{path}: bad schema value ({exc})") from exc


def read_root(path: str | Path, schema: RootSchema) -> Dataset:
    import uproot

    path = Path(path)
    try:
        f = uproot.open(path)
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such file") from None
    except Exception as exc:  # uproot raises many types for a corrupt file
        raise SchemaError(f"{path}: not a readable ROOT file ({exc})") from exc
    with f:
        if schema.tree not in f:
            raise SchemaError(f"{path}: tree {schema.tree!r} not found (keys: {f.keys()})")
        tree = f[schema.tree]
        available = set(tree.keys())
        fields: dict[str, np.ndarray] = {}
        for ours, branch in schema.branches.items():
            names = branch if isinstance(branch, list) else [branch]
            for b in names:
                if b not in available:
                    raise SchemaError(
                        f"{path}: branch {b!r} for field {ours!r} is missing from tree {schema.tree!r}",
                        f"fix the schema; branches present: {sorted(available)}",
                    )
            try:
                arrays = [np.asarray(tree[b].array(library="np")) for b in names]
            except Exception as exc:
                raise SchemaError(f"{path}: branch for field {ours!r} is not a numeric array ({exc})") from exc
            if any(a.dtype == object for a in arrays):
                raise SchemaError(
                    f"{path}: branch for field {ours!r} is jagged (variable length per entry)",
                    "store fixed-size arrays (N*N crystals per window)",
                )
            fields[ours] = arrays[0] if len(arrays) == 1 else np.stack(arrays, axis=1)
    if "impact_ieta" in fields and "impact_iphi" in fields:
        fields["impact"] = np.stack([fields.pop("impact_ieta"), fields.pop("impact_iphi")], axis=1)
    return _assemble(fields, schema.class_names, schema.lsb_gev, str(path))


def write_root(ds: Dataset, path: str | Path, tree: str = "Events") -> RootSchema:
    """Write a flat TTree with our fields (used by tests and for users' tools)."""
    import uproot

    path = Path(path)
    n, w, _ = ds.images.shape
    branches: dict[str, Any] = {
        "ecal_window": ds.images.reshape(n, w * w).astype(np.int32),
        "label": ds.labels.astype(np.int32),
        "pt": ds.pt.astype(np.float32),
        "impact_ieta": ds.impact[:, 0].astype(np.float32),
        "impact_iphi": ds.impact[:, 1].astype(np.float32),
    }
    with atomic_file(path) as tmp:
        with uproot.recreate(tmp) as f:
            f[tree] = branches
    return RootSchema(
        tree,
        {
            "images": "ecal_window",
            "labels": "label",
            "pt": "pt",
            "impact_ieta": "impact_ieta",
            "impact_iphi": "impact_iphi",
        },
        ds.class_names,
        ds.lsb_gev,
    )


def read_dataset(path: str | Path, root_schema: RootSchema | str | Path | None = None) -> Dataset:
    """Read our HDF5, an NPZ, or (with a schema, or the path of its YAML file) a ROOT file, chosen by
    the file suffix."""
    path = Path(path)
    if isinstance(root_schema, (str, Path)):
        root_schema = load_root_schema(root_schema)
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return read_h5(path)
    if suffix == ".npz":
        return read_npz(path)
    if suffix == ".root":
        if root_schema is None:
            raise SchemaError(f"{path}: a ROOT file needs a schema", "pass --root-schema schema.yaml")
        return read_root(path, root_schema)
    raise SchemaError(f"{path}: unknown data file type {suffix!r}", "use .h5, .npz or .root")
