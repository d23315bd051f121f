"""Resource bounds on foreign model files: what a file declares is counted before anything is
allocated, so a small hostile file (a zip bomb, an unwritten HDF5 dataset, a ConstantOfShape, a sparse
external-data file) is one clear error instead of gigabytes of memory.

    with limits.use(model_mb=256, layers=512):   # `trigger-ml import --max-model-mb/--max-layers`
        budget = limits.Budget(src)              # one per model file read
        budget.add(nbytes, "initializer 'w' (float32 [30000, 30000])")  # LimitError past the limit

- `model_mb` (default `DEFAULT_MODEL_MB`): in MB (10**6 bytes), each of: the model file's size;
  the declared sizes of its tensors (ONNX initializers and attribute tensors with external data);
  of what import computes from it (constant-folded outputs, the input); of a weights file's HDF5
  datasets; of the zip entries of a .keras file (before extraction).
- `layers` (default `DEFAULT_LAYERS`): layers of a Keras model, nodes on an ONNX data path.

Both can be raised with the options above or the environment variables `ENV_MODEL_MB`, `ENV_LAYERS`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from trigger_ml.errors import SchemaError

DEFAULT_MODEL_MB = 256
DEFAULT_LAYERS = 512
ENV_MODEL_MB = "TRIGGER_ML_MAX_MODEL_MB"
ENV_LAYERS = "TRIGGER_ML_MAX_LAYERS"
MB = 10**6


class LimitError(SchemaError):
    """A foreign file declares more than the limits allow (never handed to a fallback converter)."""


@dataclass(frozen=True)
class Limits:
    model_mb: int = DEFAULT_MODEL_MB
    layers: int = DEFAULT_LAYERS


_CURRENT: contextvars.ContextVar[Limits | None] = contextvars.ContextVar("trigger_ml_import_limits", default=None)


def current() -> Limits:
    return _CURRENT.get() or Limits()


@contextlib.contextmanager
def use(model_mb: int | None = None, layers: int | None = None) -> Iterator[Limits]:
    """The limits in force inside the block (None: the default)."""
    lim = Limits(model_mb or DEFAULT_MODEL_MB, layers or DEFAULT_LAYERS)
    if lim.model_mb < 1 or lim.layers < 1:
        raise SchemaError(f"import limits must be positive (got {lim.model_mb} MB, {lim.layers} layers)")
    token = _CURRENT.set(lim)
    try:
        yield lim
    finally:
        _CURRENT.reset(token)


def mb_fix() -> str:
    return (
        f"if the model is really this large, raise the limit: trigger-ml import --max-model-mb N "
        f"(or {ENV_MODEL_MB}=N; now {current().model_mb} MB); else the file is damaged or hostile"
    )


class Budget:
    """The declared bytes of one model file, added up against `model_mb`."""

    def __init__(self, src: str | Path) -> None:
        self.src = Path(src)
        self.total = 0
        self.limit = current().model_mb * MB

    def add(self, nbytes: int | float, what: str) -> None:
        if not math.isfinite(nbytes) or nbytes < 0:
            raise LimitError(f"{self.src}: {what} declares an impossible size ({nbytes} bytes)", "re-export the model")
        self.total += int(nbytes)
        if self.total > self.limit:
            raise LimitError(
                f"{self.src}: {what} takes the model's declared data to {_mb(self.total)}, over the limit of "
                f"{current().model_mb} MB (checked before reading it)",
                mb_fix(),
            )

    def file(self, path: str | Path, what: str = "the file") -> None:
        self.add(Path(path).stat().st_size, f"{what} {Path(path).name}")


def elements(shape: tuple[int, ...] | list[int]) -> int:
    """The element count of a declared shape; a negative dimension is a LimitError by its caller."""
    return math.prod(int(d) for d in shape)


def check_layers(src: str | Path, n: int, what: str = "layers") -> None:
    """At most `layers` layers (Keras) or data-path nodes (ONNX): the passes after reading are not
    linear in depth."""
    lim = current().layers
    if n > lim:
        raise LimitError(
            f"{src}: {n} {what}, more than the limit of {lim} (a trigger model is far shallower; "
            "a deeper one would take minutes to import)",
            f"if the model is really this deep, raise the limit: trigger-ml import --max-layers N (or {ENV_LAYERS}=N)",
        )


def _mb(n: int) -> str:
    return f"{n / MB:,.1f} MB"
