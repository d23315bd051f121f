"""One error type for bad input: it names what is wrong and the fix, and maps to an exit code.

The command line catches `TriggerMLError`, prints one clear message and exits with `exit_code`
(documented in README: 1 mismatch, 2 fidelity or budget exceeded, 3 usage or tool error).
"""

from __future__ import annotations


class TriggerMLError(Exception):
    """A user-facing error: `what` went wrong, `fix` says what to do about it."""

    exit_code: int = 3

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

    exit_code = 1


class GateError(TriggerMLError):
    """A fidelity threshold or a latency/resource budget is exceeded."""

    exit_code = 2
