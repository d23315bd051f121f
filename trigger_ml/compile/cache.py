"""Content-addressed caches of compile products, shared by every run on the machine.

Two levels: `firmware/<key>` holds a whole compiled output tree keyed by the hash of the model
file, its card and the compile options (a re-run on an unchanged model copies it), and
`lib/<key>.so` holds C-simulation libraries keyed by the hash of their sources and flags (a
model saved again with the same weights rebuilds no C++). Entries are written to a temporary
name and renamed, so parallel compiles never see each other's partial files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path


def cache_root() -> Path:
    """$TRIGGER_ML_CACHE, else ~/.cache/trigger-ml."""
    root = os.environ.get("TRIGGER_ML_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "trigger-ml"


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


def firmware_entry(key: str) -> Path:
    return cache_root() / "firmware" / key


def store_tree(src: Path, key: str) -> None:
    """Copy a finished output tree into the cache (first writer wins; failures are harmless)."""
    dest = firmware_entry(key)
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.tmp-", dir=dest.parent))
    try:
        shutil.copytree(src, tmp / "t", symlinks=True)
        os.replace(tmp / "t", dest)
    except OSError:
        pass  # another compile stored it first, or the cache is not writable: not an error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

