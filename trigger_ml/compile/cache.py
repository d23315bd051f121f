"""Content-addressed caches of build products, shared by every run on the machine, and checked.

`firmware/<key>` holds a whole compiled output tree keyed by the hash of the model file, its card
and the compile options (a re-run on an unchanged model copies it); `lib/<key>.so` holds
C-simulation libraries keyed by the hash of their sources and flags (a model saved again with
the same weights rebuilds no C++); `rtl/`, `yosys/` and `loaded/` hold Verilator libraries,
synthesis results and the libraries actually loaded. Entries are written to a temporary name and
renamed, so parallel compiles never see each other's partial files.

Nothing is served unchecked: a single-file entry is stored with its sha256 beside it
(`<entry>.sha256`) and `get` returns it only when the bytes still match; a firmware tree is
served only when every file matches its manifest (`tree_ok`). A modified or corrupt entry is
discarded (said in the log) and built again.

When the cache folder cannot be written (read-only home, no space), the caches live in a
temporary folder for this process instead (`root`), so a compile never fails for it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from trigger_ml.atomic import atomic_file, sweep, tmp_prefix
from trigger_ml.layout import Cache

log = logging.getLogger(__name__)
SIDECAR = ".sha256"


def digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_hashes(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under `root`, by relative path (sorted); names in `skip` are left out."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not any(part in skip for part in p.relative_to(root).parts):
            out[rel] = file_sha256(p)
    return out


@functools.cache
def _writable_root(default: str) -> str:
    root = Path(default)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(prefix=tmp_prefix(), dir=root):
            pass
        sweep(root)
        return default
    except OSError as exc:
        fallback = tempfile.mkdtemp(prefix=tmp_prefix() + "cache-")
        log.warning(
            "the cache folder %s is not writable (%s): using %s for this run (set TRIGGER_ML_CACHE to keep "
            "builds between runs)",
            default,
            exc.strerror or exc,
            fallback,
        )
        return fallback


def root() -> Cache:
    """The cache in use: $TRIGGER_ML_CACHE or ~/.cache/trigger-ml when writable, else a temporary folder."""
    return Cache(Path(_writable_root(str(Cache.default().root))))


def get(path: Path) -> Path | None:
    """A single-file cache entry if present and its bytes still match its recorded sha256; a
    modified entry is removed (and None returned, so the caller builds it again)."""
    side = path.with_name(path.name + SIDECAR)
    if not path.exists():
        return None
    try:
        ok = side.read_text().strip() == file_sha256(path)
    except OSError:
        ok = False
    if not ok:
        log.warning("cache entry %s does not match its recorded sha256 (modified or corrupt): rebuilding it", path)
        path.unlink(missing_ok=True)
        side.unlink(missing_ok=True)
        return None
    return path


def put(src: Path, path: Path) -> Path:
    """Store file `src` as cache entry `path` (atomic), with its sha256 beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sha = file_sha256(src)
    with atomic_file(path) as tmp:
        shutil.copyfile(src, tmp)
    with atomic_file(path.with_name(path.name + SIDECAR)) as tmp:
        tmp.write_text(sha + "\n")
    return path


def put_text(text: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    with atomic_file(path.with_name(path.name + SIDECAR)) as tmp:
        tmp.write_text(file_sha256(path) + "\n")
    return path


def tree_ok(entry: Path, manifest_name: str) -> bool:
    """Whether every file of a cached output tree matches the sha256 its manifest records."""
    try:
        recorded = json.loads((entry / manifest_name).read_text())["outputs_sha256"]
    except (OSError, ValueError, KeyError):
        return False
    return tree_hashes(entry, skip=(manifest_name,)) == recorded


def store_tree(src: Path, key: str) -> None:
    """Copy a finished output tree into the cache (first writer wins; failures are harmless)."""
    dest = root().firmware(key)
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    sweep(dest.parent)
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(), dir=dest.parent))
    try:
        shutil.copytree(src, tmp / "t", symlinks=True)
        os.replace(tmp / "t", dest)
    except OSError:
        pass  # another compile stored it first, or the cache is not writable: not an error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def discard(entry: Path) -> None:
    shutil.rmtree(entry, ignore_errors=True)
