"""One error type for bad input: it names what is wrong and the fix, and maps to an exit code.

The command line catches `TriggerMLError`, prints one clear message and exits with `exit_code`.
Exit codes (README, "Exit codes"; one meaning each, in every command):
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_MISMATCH = 1  # two levels that must agree bit for bit do not
EXIT_GATE = 2  # a fidelity threshold or a latency/resource budget is exceeded
EXIT_USAGE = 3  # usage, input or tool error: one line says what and the fix
EXIT_SCAN_POINT = 4  # `trigger-ml scan`: a point failed (recorded; the others ran)
EXIT_INTERNAL = 5  # an unexpected error (a bug): a short message and the path of the full report
EXIT_INTERRUPTED = 130  # Ctrl-C: finished outputs kept, partial ones removed


class TriggerMLError(Exception):
    """A user-facing error: `what` went wrong, `fix` says what to do about it."""

    exit_code: int = EXIT_USAGE

    def __init__(self, what: str, fix: str | None = None) -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what}\n  fix: {fix}" if fix else what)


class SchemaError(TriggerMLError):
    """A data file or model card lacks a field or has one of the wrong type or shape."""


class UnsupportedError(TriggerMLError):
    """A layer, quantizer or option that a stage does not support."""


class ToolError(TriggerMLError):
    """An external tool (compiler, verilator, yosys, vendor tool) is missing or failed."""


class MismatchError(TriggerMLError):
    """Two levels that must agree bit for bit do not."""

    exit_code = EXIT_MISMATCH


class GateError(TriggerMLError):
    """A fidelity threshold or a latency/resource budget is exceeded."""

    exit_code = EXIT_GATE


def require_equal(got, want, what: str, fix: str) -> None:
    """Raise one MismatchError when two output arrays (one row per event) differ anywhere: how many
    events differ and the first one, expected and got. `what` says which two are compared."""
    import numpy as np

    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise MismatchError(f"{what}: outputs of shape {got.shape}, expected {want.shape}", fix)
    bad = np.flatnonzero(np.any(got.reshape(len(got), -1) != want.reshape(len(want), -1), axis=1))
    if len(bad):
        i = int(bad[0])
        raise MismatchError(
            f"{what} on {len(bad)}/{len(want)} events; first event {i}: expected "
            f"{want[i].ravel().tolist()}, got {got[i].ravel().tolist()}",
            fix,
        )
