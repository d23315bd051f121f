"""Atomic outputs: write into a temporary sibling, rename into place only when complete.

A failed or interrupted stage leaves nothing half-written at the destination, and two writers
of the same destination never see each other's partial files. Every temporary name starts
with `layout.TMP_PREFIX` and carries the writer's process id, so what a killed process (SIGKILL)
left behind is recognised and removed by the next writer in the same folder (`sweep`).

An output directory replaces an existing directory only when that directory is empty or is ours: a
previous output of the same kind (`layout.Output`), which means both
- its marker's content says we wrote it (a firmware directory's manifest.json holds the model, its
  sha256 and the sha256 of every output; a run's metrics.json its data section; a report's
  report.json, an ONNX export's export.json, a CMSSW export's BuildFile.xml ours), and
- it holds nothing but names an output of that kind has (a notebook, a csv or a `src/` beside an
  unrelated manifest.json are someone else's: the folder is not touched).
Otherwise (and for `--out firmware`, a folder of other models, the working directory or one of its
parents) one clear error names the folder, before anything is written. Folders our earlier versions
wrote (the committed firmware/<model>/ references) pass the same test, so re-runs refresh them.

A destination that exists but is neither a regular file nor a folder (a character or block device
such as /dev/null, a fifo, a socket, or a symbolic link to one) is never replaced: one clear error.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path

from trigger_ml.errors import TriggerMLError
from trigger_ml.layout import TMP_PREFIX, Output

MAX_MARKER = 64 << 20  # a marker larger than this is not ours (a manifest of many files is a few MB)


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


_NODES = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a fifo (named pipe)",
    stat.S_IFSOCK: "a socket",
}


def check_node(dest: str | os.PathLike[str]) -> None:
    """Refuse a destination that exists but is neither a regular file nor a folder (a device, fifo,
    socket, or a symbolic link to one): replacing it would replace e.g. /dev/null."""
    try:
        mode = os.stat(dest).st_mode  # follows a symbolic link: a link to /dev/null is /dev/null
    except OSError:
        return  # missing (or a dangling link, replaced as a link)
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        what = _NODES.get(stat.S_IFMT(mode), "a special file")
        what = f"a symbolic link to {what}" if os.path.islink(dest) else what
        raise TriggerMLError(
            f"{dest} is {what}, not a regular file or folder: it is not replaced",
            "name a regular file or a new path for the output",
        )


def check_file(dest: str | os.PathLike[str]) -> None:
    """Refuse a file destination `atomic_file` would not replace (call it before long work)."""
    check_node(dest)
    if Path(dest).is_dir():
        raise TriggerMLError(f"{dest} is a directory: a file cannot replace it", "choose another output file name")


def _marked(dest: Path, kind: Output) -> bool:
    """Whether the marker's content says the folder is an output of `kind` that we wrote."""
    p = dest / kind.marker
    try:
        if p.is_symlink() or not p.is_file() or p.stat().st_size > MAX_MARKER:
            return False
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if not kind.keys:
        return kind.text in text
    try:
        content = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(content, dict) and all(k in content for k in kind.keys)


def check_destination(dest: Path, kind: Output | None) -> None:
    """Refuse to replace what is not ours (see the module docstring); `kind` None: only an empty folder."""
    check_node(dest)
    opt = kind.option if kind else "--out"  # the option the fixes name (--cmssw for a CMSSW export)
    try:
        here, target = Path.cwd().resolve(), dest.resolve()
    except OSError:
        return
    if target == here or target in here.parents:
        raise TriggerMLError(
            f"{dest} is the working directory or one of its parents: an output cannot replace it",
            f"choose a new directory for {opt}" + (", e.g. firmware/<model>" if opt == "--out" else ""),
        )
    if not dest.is_dir():
        if dest.exists():
            raise TriggerMLError(f"{dest} exists and is not a directory", f"choose another {opt}")
        return
    names = sorted(p.name for p in dest.iterdir() if not p.name.startswith(TMP_PREFIX))
    if not names:
        return
    if kind is None or not _marked(dest, kind):
        what = f" (a {kind.name} with the {kind.marker} trigger-ml writes)" if kind else ""
        raise TriggerMLError(
            f"{dest} is not empty and is not a previous output of this kind{what}: it is not replaced",
            f"choose a new directory for {opt}, or remove that folder yourself",
        )
    foreign = [n for n in names if not any(fnmatchcase(n, pat) for pat in kind.entries)]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise TriggerMLError(
            f"{dest} holds files a {kind.name} never has ({shown}): it is not replaced",
            f"move those files elsewhere, or choose a new directory for {opt}",
        )


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike[str], *, overwrite: bool = True, kind: Output | None = None) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces `dest` when the block succeeds.

    `kind`: what an output of this kind is; an existing non-empty `dest` is replaced only when it is
    a previous output of that kind (`check_destination`)."""
    dest = Path(dest)
    check_destination(dest, kind)
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
    check_file(dest)
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
