"""The model card: one YAML file per model in models/, loaded once into frozen dataclasses.

A card holds everything about a model: its input, layers, quantization, training, pruning,
firmware settings, fidelity thresholds and budget. A new model is a new card; the layer
types a card may use are the entries of `trigger_ml.layers.KINDS`.

Every value is checked once, when the card is loaded (also when compile and verify re-read the
card a run or firmware directory holds): its type, its range (`bounded`), the model name (it
becomes a file name and a C++/Verilog identifier: `NAME`), the layers (`layers.check_layers`)
and the FPGA part (`fpga.family_of`). A bad value is one `SchemaError` naming the key, the value
and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from trigger_ml import fpga
from trigger_ml.errors import SchemaError
from trigger_ml.layers import KINDS, NAME, check_layers, layer_name
from trigger_ml.patterns.mapping import LinkMapping


def bounded(
    default: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False
) -> Any:
    """A dataclass field whose value must lie in [lo, hi] (an open end excludes the bound)."""
    return field(default=default, metadata={"range": (lo, hi, lo_open, hi_open)})


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

    weight_bits: int = bounded(8, 1, 32)
    weight_integer: int = bounded(2, -16, 16)
    weight_trainable: bool = True
    bias_bits: int = bounded(12, 1, 32)
    bias_integer: int = bounded(4, -16, 16)
    act_frac_bits: int = bounded(6, 0, 24)
    act_trainable: bool = True
    beta: tuple[float, float] = (1e-7, 1e-6)


@dataclass(frozen=True)
class Training:
    epochs: int = bounded(30, 1, 100_000)
    batch_size: int = bounded(1024, 1, 1 << 20)
    learning_rate: float = bounded(3e-3, 0, 10, lo_open=True)
    patience: int = bounded(5, 0, 100_000)
    validation_fraction: float = bounded(0.2, 0, 1, lo_open=True, hi_open=True)
    test_fraction: float = bounded(0.25, 0, 1, lo_open=True, hi_open=True)
    seed: int = bounded(1, 0, 2**32 - 1)
    max_events: int | None = bounded(None, 10)  # use at most this many windows of the data set


@dataclass(frozen=True)
class Pruning:
    """Magnitude pruning to `target` sparsity (per layer name, or `default` for all kernels)."""

    default: float = bounded(0.0, 0, 1, hi_open=True)
    per_layer: dict[str, float] = field(default_factory=dict)
    begin_fraction: float = bounded(0.1, 0, 1)  # of the optimizer steps
    end_fraction: float = bounded(0.6, 0, 1)
    frequency: int = bounded(50, 1, 1_000_000)

    def target(self, layer: str) -> float:
        return self.per_layer.get(layer, self.default)


@dataclass(frozen=True)
class Firmware:
    backend: Literal["Vitis", "Vivado"] = "Vitis"
    part: str = "xcvu13p-flga2577-2-e"  # checked against the known families (trigger_ml.fpga)
    clock_ns: float = bounded(5.0, 0.1, 1000.0)
    strategy: Literal["latency", "distributed_arithmetic"] = "latency"
    reuse_factor: int = bounded(1, 1, 4096)
    io_type: Literal["io_parallel", "io_stream"] = "io_parallel"
    # da4ml pipelining: `timing` cuts stages by the delay model (trigger_ml.timing) so each is
    # expected to meet clock_ns; `levels` cuts every `latency_cutoff` adder levels (da4ml's units)
    pipelining: Literal["timing", "levels"] = "timing"
    latency_cutoff: float = bounded(5.0, 0, 1000, lo_open=True)


@dataclass(frozen=True)
class Fidelity:
    """Allowed loss of the quantized model against its float twin (physics, not exactness)."""

    # a negative limit demands the quantized model beat its float twin by that much
    max_auc_loss: float = bounded(0.005, -1, 1)
    max_efficiency_loss: float = bounded(0.02, -1, 1)
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

    masked_centre: int = bounded(0, 0, 15)
    one_sided_centre: bool = False
    score_weights: Literal["ones", "standardised"] = "ones"
    weight_power: float = bounded(0.5, 0, 4)
    max_weight_shift: int = bounded(6, 0, 16)


@dataclass(frozen=True)
class Budget:
    lut: int | None = bounded(None, 0)
    ff: int | None = bounded(None, 0)
    dsp: int | None = bounded(None, 0)
    bram: int | None = bounded(None, 0)
    latency_ns: float | None = bounded(None, 0)
    ii: int | None = bounded(None, 1)


@dataclass(frozen=True)
class ModelCard:
    name: str
    task: Task
    input: InputKind
    layers: tuple[dict[str, Any], ...]
    classes: tuple[str, ...] = ("eg", "pu")  # classifier: (signal, background); anomaly: training classes
    image_integer_bits: int = bounded(
        0, 0, 16
    )  # image counts of b bits enter as ufixed<b, this> (counts / 2**(b - this))
    quantization: Quantization = Quantization()
    training: Training = Training()
    pruning: Pruning = Pruning()
    firmware: Firmware = Firmware()
    fidelity: Fidelity = Fidelity()
    anomaly: Anomaly = Anomaly()
    budget: Budget = Budget()
    # board-test link mapping: {inputs: {...}, outputs: {...}}, keys of trigger_ml.patterns.LinkMapping
    patterns: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = ""

    def with_overrides(self, **sections: dict[str, Any]) -> ModelCard:
        """A validated copy with fields of sections replaced, e.g. training={"epochs": 1}."""
        data = self.to_dict()
        for sec, values in sections.items():
            data[sec] = (
                {**data[sec], **values} if isinstance(data.get(sec), dict) and isinstance(values, dict) else values
            )
        return card_from_dict(data, f"{self.name} (overridden)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        raise SchemaError(f"{where}: unknown key {unknown[0]!r}", f"known keys: {sorted(fields)}")
    kwargs = {}
    for key, value in data.items():
        try:
            value = _coerce(hints[key], value, f"{where}.{key}")
        except SchemaError as exc:
            if exc.fix:
                raise
            raise SchemaError(exc.what, f"allowed: {_allowed(fields[key], hints[key])}") from None
        _check_range(fields[key], value, f"{where}.{key}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise SchemaError(f"{where}: {exc}") from exc


def _allowed(f: dataclasses.Field, tp: Any) -> str:
    """What a field takes, for error messages: its type, choices or range."""
    args = [a for a in get_args(tp) if a is not type(None)]
    if get_origin(tp) is Literal:
        return f"one of {list(args)}"
    name = getattr(args[0] if get_origin(tp) in (Union, UnionType) and args else tp, "__name__", str(tp))
    if "range" in f.metadata:
        lo, hi, lo_open, hi_open = f.metadata["range"]
        lo_s, hi_s = ("-inf" if lo is None else f"{lo:g}"), ("inf" if hi is None else f"{hi:g}")
        name += f" in {'(' if lo_open else '['}{lo_s}, {hi_s}{')' if hi_open else ']'}"
    return name + (" or null" if type(None) in get_args(tp) else "")


def _check_range(f: dataclasses.Field, value: Any, where: str) -> None:
    if "range" not in f.metadata or value is None:
        return
    lo, hi, lo_open, hi_open = f.metadata["range"]
    bad = (lo is not None and (value < lo or (lo_open and value == lo))) or (
        hi is not None and (value > hi or (hi_open and value == hi))
    )
    if bad:
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise SchemaError(
            f"{where}: {value!r} is out of range",
            f"allowed: {'(' if lo_open else '['}{lo_s}, {hi_s}{')' if hi_open else ']'}",
        )


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (Union, UnionType):  # X | None
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, where)
    if origin is Literal:
        if value not in args:
            raise SchemaError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SchemaError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise SchemaError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected a mapping, got {value!r}")
        return {_coerce(args[0], k, where): _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool and not isinstance(value, bool):
        raise SchemaError(f"{where}: expected true or false, got {value!r}")
    if tp in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise SchemaError(f"{where}: expected a number, got {value!r}")
    if tp is int and isinstance(value, float) and not value.is_integer():
        raise SchemaError(f"{where}: expected an integer, got {value!r}")
    if tp is int:
        return int(value)
    if tp is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise SchemaError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str and not isinstance(value, str):
        raise SchemaError(f"{where}: expected a string, got {value!r}")
    return value


def load_yaml(path: str | Path, what: str, fix: str) -> Any:
    """A YAML file's content (safe loader); a missing or unreadable file is one error naming `what`."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such {what}", fix) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SchemaError(f"{path}: not a readable YAML {what} ({exc})", fix) from exc


def load_card(path: str | Path) -> ModelCard:
    """Read and validate a model card (YAML)."""
    data = load_yaml(path, "model card", "see models/ for the reference cards")
    return dataclasses.replace(card_from_dict(data, Path(path).name), source=str(path))


def _check_pruned_layers(card: ModelCard, where: str) -> None:
    """Every `pruning.per_layer` key names a layer with weights (a misspelt name is an error, not ignored)."""
    weighted = [layer_name(s, i) for i, s in enumerate(card.layers) if KINDS[s["type"]].weights]
    unknown = [name for name in card.pruning.per_layer if name not in weighted]
    if unknown:
        raise SchemaError(
            f"{where}.pruning.per_layer: {unknown[0]!r} is not a layer with weights of this card",
            f"name one of the layers with weights: {', '.join(weighted)}",
        )


def card_from_dict(data: Any, where: str) -> ModelCard:
    """Validate a card given as a mapping (the YAML's content); `where` names it in errors."""
    card = _build(ModelCard, data, where)
    if not NAME.fullmatch(card.name):
        raise SchemaError(
            f"{where}: model name {card.name!r} is not allowed (it names files, a C++ namespace, Verilog and Tcl)",
            "letters, digits and '_', starting with a letter, at most 64 characters",
        )
    if card.task == "imported":  # the layers describe an imported model file (the file is the truth)
        if card.input != "tensor":
            raise SchemaError(f"{where}: task 'imported' goes with input 'tensor' (cards of `trigger-ml import`)")
    else:
        if card.input == "tensor":
            raise SchemaError(f"{where}: input 'tensor' is for imported models (task 'imported')")
        check_layers(card.layers, where)
        _check_pruned_layers(card, where)
        if card.task == "classifier" and (card.layers[-1].get("type") != "dense" or card.layers[-1].get("units") != 1):
            raise SchemaError(f"{where}: a classifier ends in dense with units: 1 (the logit)")
    for layer, value in card.pruning.per_layer.items():
        if not 0 <= value < 1:
            raise SchemaError(f"{where}.pruning.per_layer.{layer}: {value!r} is out of range", "allowed: [0, 1)")
    if card.training.validation_fraction + card.training.test_fraction >= 1:
        raise SchemaError(
            f"{where}.training: validation_fraction + test_fraction must be below 1", "leave some windows to train on"
        )
    fpga.family_of(card.firmware.part)
    bad = sorted(set(card.patterns) - {"inputs", "outputs"})
    if bad:
        raise SchemaError(f"{where}.patterns: unknown key(s) {bad}", "use inputs: and outputs: (README, Board tests)")
    for side, mapping in card.patterns.items():
        LinkMapping.from_dict(mapping, f"{where}.patterns.{side}")
    return card
