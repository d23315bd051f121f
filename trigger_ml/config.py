"""The model card: one YAML file per model in models/, loaded once into frozen dataclasses.

A card holds everything about a model: its input, layers, quantization, training, pruning,
firmware settings, fidelity thresholds and budget. A new model is a new card; the layer
types a card may use are the registry `trigger_ml.train.models.LAYERS`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from trigger_ml.errors import SchemaError

Task = Literal["classifier", "anomaly", "imported"]  # imported: `trigger-ml import` (trigger_ml.interop)
InputKind = Literal["features", "image", "image_flat", "tensor"]  # tensor: shape and grid in the run's metrics.json


@dataclass(frozen=True)
class Quantization:
    """hgq2-native quantizers (rounding RND, overflow WRAP for data, SAT_SYM for weights).

    Weights: `weight_bits` bits (sign excluded) of which `weight_integer` above the point, per
    weight; `weight_trainable` lets HGQ learn each weight's width (heterogeneous) under the
    EBOPs penalty `beta` (ramped log-linearly from beta[0] to beta[1] over training).
    Activations: `act_frac_bits` initial fractional bits, learned likewise; integer bits are
    traced from the data.
    """

    weight_bits: int = 8
    weight_integer: int = 2
    weight_trainable: bool = True
    bias_bits: int = 12
    bias_integer: int = 4
    act_frac_bits: int = 6
    act_trainable: bool = True
    beta: tuple[float, float] = (1e-7, 1e-6)


@dataclass(frozen=True)
class Training:
    epochs: int = 30
    batch_size: int = 1024
    learning_rate: float = 3e-3
    patience: int = 5
    validation_fraction: float = 0.2
    test_fraction: float = 0.25
    seed: int = 1
    max_events: int | None = None  # use at most this many windows of the data set


@dataclass(frozen=True)
class Pruning:
    """Magnitude pruning to `target` sparsity (per layer name, or `default` for all kernels)."""

    default: float = 0.0
    per_layer: dict[str, float] = field(default_factory=dict)
    begin_fraction: float = 0.1  # of the optimizer steps of the first `schedule_epochs`
    end_fraction: float = 0.6
    frequency: int = 50

    def target(self, layer: str) -> float:
        return self.per_layer.get(layer, self.default)


@dataclass(frozen=True)
class Firmware:
    backend: str = "Vitis"
    part: str = "xcvu13p-flga2577-2-e"
    clock_ns: float = 5.0
    strategy: Literal["latency", "distributed_arithmetic"] = "latency"
    reuse_factor: int = 1
    io_type: Literal["io_parallel", "io_stream"] = "io_parallel"
    # da4ml pipelining: `timing` cuts stages by the delay model (trigger_ml.timing) so each is
    # expected to meet clock_ns; `levels` cuts every `latency_cutoff` adder levels (da4ml's units)
    pipelining: Literal["timing", "levels"] = "timing"
    latency_cutoff: float = 5.0


@dataclass(frozen=True)
class Fidelity:
    """Allowed loss of the quantized model against its float twin (physics, not exactness)."""

    max_auc_loss: float = 0.005
    max_efficiency_loss: float = 0.02
    min_anomaly_auc: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Anomaly:
    """How an anomaly model scores a window (see trigger_ml.train.models).

    `masked_centre`: the encoder does not see the central k x k crystals (k odd; 0: it sees all),
    so the model reconstructs them from their surroundings (a learned Swiss-cross);
    `one_sided_centre` then counts their error only where the data exceed the reconstruction
    (energy the surroundings cannot explain; a shower that spreads more than predicted is normal).
    `score_weights`: `ones` sums the squared errors; `standardised` weighs crystal i by
    (mean squared error of normal training windows)**-`weight_power`, as a power of two within
    2**-max_weight_shift .. 1.
    """

    masked_centre: int = 0
    one_sided_centre: bool = False
    score_weights: Literal["ones", "standardised"] = "ones"
    weight_power: float = 0.5
    max_weight_shift: int = 6


@dataclass(frozen=True)
class Budget:
    lut: int | None = None
    ff: int | None = None
    dsp: int | None = None
    bram: int | None = None
    latency_ns: float | None = None
    ii: int | None = None


@dataclass(frozen=True)
class ModelCard:
    name: str
    task: Task
    input: InputKind
    layers: tuple[dict[str, Any], ...]
    classes: tuple[str, ...] = ("eg", "pu")  # classifier: (signal, background); anomaly: training classes
    image_integer_bits: int = 0  # image counts of b bits enter as ufixed<b, this> (counts / 2**(b - this))
    quantization: Quantization = Quantization()
    training: Training = Training()
    pruning: Pruning = Pruning()
    firmware: Firmware = Firmware()
    fidelity: Fidelity = Fidelity()
    anomaly: Anomaly = Anomaly()
    budget: Budget = Budget()
    description: str = ""
    source: str = ""

    def with_overrides(self, **sections: dict[str, Any]) -> ModelCard:
        """A copy with fields of sections replaced, e.g. training={"epochs": 1}."""
        changes = {}
        for sec, values in sections.items():
            cur = getattr(self, sec)
            changes[sec] = dataclasses.replace(cur, **values) if dataclasses.is_dataclass(cur) else values
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SchemaError(f"{where}: unknown key {unknown[0]!r}", f"known keys: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise SchemaError(f"{where}: {exc}") from exc


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is Literal:
        if value not in get_args(tp):
            raise SchemaError(f"{where}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SchemaError(f"{where}: expected a list, got {value!r}")
        return tuple(value)
    if tp is bool and not isinstance(value, bool):
        raise SchemaError(f"{where}: expected true or false, got {value!r}")
    if tp in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise SchemaError(f"{where}: expected a number, got {value!r}")
    if tp is int and isinstance(value, float) and not value.is_integer():
        raise SchemaError(f"{where}: expected an integer, got {value!r}")
    if tp is int:
        return int(value)
    if tp is float:
        return float(value)
    return value


def load_card(path: str | Path) -> ModelCard:
    """Read and validate a model card (YAML)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such model card", "see models/ for the reference cards")
    except yaml.YAMLError as exc:
        raise SchemaError(f"{path}: not valid YAML ({exc})") from exc
    return dataclasses.replace(card_from_dict(data, path.name), source=str(path))


def card_from_dict(data: Any, where: str) -> ModelCard:
    """Validate a card given as a mapping (the YAML's content); `where` names it in errors."""
    card = _build(ModelCard, data, where)
    from trigger_ml.train.models import check_layers  # the layer registry lives with the builders

    check_layers(card, where)
    return card
