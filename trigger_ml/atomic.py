"""Atomic outputs: write into a temporary sibling, rename into place only when complete.

A failed or interrupted stage leaves nothing half-written at the destination, and two writers
of the same destination never see each other's partial files. Every temporary name starts
with `layout.TMP_PREFIX` and carries the writer's process id, so what a killed process (SIGKILL)
left behind is recognised and removed by the next writer in the same folder (`sweep`).

An output directory replaces an existing directory only when that directory is a previous output
of the same kind (it holds the kind's `marker` file) or is empty: `--out firmware` (a folder of
other models), the working directory or one of its parents are refused with one clear error.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from trigger_ml.errors import TriggerMLError
from trigger_ml.layout import TMP_PREFIX


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def tmp_prefix() -> str:
    """The prefix of this process's temporary names: `.tml-tmp-<pid>-`."""
    return f"{TMP_PREFIX}{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove temporary files and directories in `folder` left by processes that no longer run."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        if not p.name.startswith(TMP_PREFIX):
            continue
        pid = p.name[len(TMP_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def check_destination(dest: Path, marker: str | None) -> None:
    """Refuse to replace what is not a previous output of the same kind (see the module docstring)."""
    try:
        here, target = Path.cwd().resolve(), dest.resolve()
    except OSError:
        return
    if target == here or target in here.parents:
        raise TriggerMLError(
            f"{dest} is the working directory or one of its parents: an output cannot replace it",
            "choose a new directory for --out, e.g. firmware/<model>",
        )
    if marker is None or not dest.is_dir():
        if dest.exists() and not dest.is_dir():
            raise TriggerMLError(f"{dest} exists and is not a directory", "choose another --out")
        return
    if any(dest.iterdir()) and not (dest / marker).exists():
        raise TriggerMLError(
            f"{dest} is not empty and is not a previous output of this kind (no {marker} in it): it is not replaced",
            "choose a new directory for --out, or remove that folder yourself",
        )


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike[str], *, overwrite: bool = True, marker: str | None = None) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces `dest` when the block succeeds.

    `marker`: the file that identifies an output of this kind; an existing non-empty `dest`
    without it is never replaced."""
    dest = Path(dest)
    check_destination(dest, marker)
    dest.parent.mkdir(parents=True, exist_ok=True)
    sweep(dest.parent)
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(), dir=dest.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(dest)
        old = Path(tempfile.mkdtemp(prefix=tmp_prefix(), dir=dest.parent))
        os.replace(dest, old / "x")
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)


@contextlib.contextmanager
def atomic_file(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary file path that replaces `dest` when the block succeeds."""
    dest = Path(dest)
    if dest.is_dir():
        raise TriggerMLError(f"{dest} is a directory: a file cannot replace it", "choose another output file name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    sweep(dest.parent)
    fd, name = tempfile.mkstemp(prefix=tmp_prefix(), dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, dest)


@contextlib.contextmanager
def scratch_dir(parent: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A temporary working directory (removed afterwards), named so that a killed run's is swept."""
    parent = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    sweep(parent)
    with tempfile.TemporaryDirectory(prefix=tmp_prefix(), dir=parent) as tmp:
        yield Path(tmp)
