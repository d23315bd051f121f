"""The command line: `trigger-ml data|train|compile|verify|report|run|scan|import|export|patterns ...`.

One module per group of commands (`data`, `stages` (incl. run and scan), `interop`, `patterns`), one Typer
application (`app`). Every command raises `TriggerMLError` for bad input; `main` prints it once and
exits with its code; every other ending also has its own documented code (trigger_ml.errors).
"""

from __future__ import annotations

import errno
import sys

import typer
from rich.markup import escape

from trigger_ml.cli.app import app
from trigger_ml.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, TriggerMLError
from trigger_ml.progress import console

# the commands register in this order, which `--help` keeps
from trigger_ml.cli import data, stages, interop, patterns  # noqa: E402, F401, I001  # isort: skip

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Run the command line; every ending is one of the documented exit codes (trigger_ml.errors)."""
    from typer.exceptions import TyperException

    try:
        code = app(args=argv, standalone_mode=False)  # click returns a typer.Exit's code here, not raises it
        if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into Exit(130)
            raise KeyboardInterrupt
        if isinstance(code, int) and code:
            sys.exit(code)
    except TriggerMLError as exc:
        console.print(f"[bold red]error:[/] {escape(exc.what)}", highlight=False, soft_wrap=True)
        if exc.fix:
            console.print(f"  [bold]fix:[/] {escape(exc.fix)}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except TyperException as exc:  # usage errors: unknown option or command, a bad value
        console.print(f"[bold red]error:[/] {escape(exc.format_message())}", highlight=False, soft_wrap=True)
        console.print("  [bold]fix:[/] see `trigger-ml --help` or `trigger-ml <command> --help`", highlight=False)
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            console.print(f"[bold red]error:[/] disk full while writing {escape(str(exc.filename or ''))}")
            console.print("  [bold]fix:[/] free space or choose another --out; nothing was left half-written")
        else:
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_USAGE)
    except (KeyboardInterrupt, typer.Abort):
        console.print(
            "[bold red]interrupted[/]: finished outputs are kept, partial ones removed; "
            "run the same command again to resume"
        )
        sys.exit(EXIT_INTERRUPTED)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except MemoryError:
        console.print("[bold red]error:[/] out of memory", highlight=False)
        console.print("  [bold]fix:[/] use fewer events (--events, --verify-events, --fuzz) or a smaller data file")
        sys.exit(EXIT_USAGE)
    except Exception as exc:  # a bug: say so briefly, keep the traceback in a file
        report = _crash_report(exc)
        console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))[:300]}",
            highlight=False,
            soft_wrap=True,
        )
        console.print(f"  the full report is in {report}; please send it with the command you ran", highlight=False)
        sys.exit(EXIT_INTERNAL)


def _crash_report(exc: BaseException) -> str:
    import tempfile
    import traceback

    from trigger_ml import __version__

    text = f"trigger-ml {__version__}\nargv: {sys.argv}\n\n" + "".join(traceback.format_exception(exc))
    try:
        fd, name = tempfile.mkstemp(prefix="trigger-ml-crash-", suffix=".txt")
        with open(fd, "w") as f:
            f.write(text)
        return name
    except OSError:
        return "(could not be written: " + text.splitlines()[-1] + ")"
