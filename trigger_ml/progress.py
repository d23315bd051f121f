"""Rich progress bars and logging set-up for long work (quiet when not on a terminal)."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)  # progress, logs and errors
results = Console(width=None if sys.stdout.isatty() else 140)  # tables and figures a user asked for (wide when piped)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )
    for noisy in ("tensorflow", "absl", "h5py", "numba"):  # retracing warnings and the like: not for users
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.ERROR)


@contextlib.contextmanager
def task(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar; yields `advance(n)`."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    ) as prog:
        tid = prog.add_task(description, total=total)
        yield lambda n: prog.advance(tid, n)
