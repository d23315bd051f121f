"""Layer kinds as data: one entry per kind, read by the card, both builders, training and compile.

An entry (`Kind`) says everything about one kind of layer:
- `keys`: the card keys it takes, with their types, bounds and defaults (`Key`);
- `quantized(spec, name, iq)`: the hgq2 layer of a card spec (`iq`: the input quantizer's config
  when it is the model's first layer and can carry it, else None);
- `float(spec, name)`: the Keras layer of the float twin (same name, so weights map by name);
- `weights`: which variables the quantized layer copies from the twin (kernel, bias);
- `classes`: the Keras class names of its quantized layer, and `hls4ml` / `da4ml`: whether each
  converts it exactly (compile refuses a model holding a class no entry names).
Entries without builders (`card=False`) are layers a model may hold but a card cannot ask for:
the anomaly score's arithmetic and the layers of imported models.

Adding a kind: one entry here and its tests (tests/test_layers.py; a card using it in
tests/compile). docs/architecture.md lists where else a kind may need a word.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trigger_ml.errors import SchemaError, UnsupportedError

REQUIRED = object()
ACTIVATIONS = ("relu", "linear")
NAME = re.compile(r"\A[A-Za-z][A-Za-z0-9_]{0,63}\Z")  # layer and model names: identifiers in C++, Verilog, Tcl
MAX_LAYERS = 256


@dataclass(frozen=True)
class Key:
    """One card key of a layer: a type, bounds or choices, and a default (REQUIRED: none)."""

    type: type
    default: Any = REQUIRED
    lo: float | None = None
    hi: float | None = None
    choices: tuple[Any, ...] = ()

    def check(self, value: Any, where: str, key: str) -> Any:
        """`value` of card key `key`, checked; `where` names the layer in the error."""
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise SchemaError(f"{where} has {key} {value!r}: not an integer", self.allowed())
        elif self.type is str and not isinstance(value, str):
            raise SchemaError(f"{where} has {key} {value!r}: not a string", self.allowed())
        if self.choices and value not in self.choices:
            raise UnsupportedError(f"{where} has {key} {value!r}, which is not supported", self.allowed())
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise SchemaError(f"{where} has {key} {value!r}: out of range", self.allowed())
        return value

    def allowed(self) -> str:
        if self.choices:
            return f"one of {list(self.choices)}"
        if self.lo is not None or self.hi is not None:
            return f"{self.type.__name__} in [{self.lo:g}, {self.hi:g}]"
        return self.type.__name__


def _name_key() -> Key:
    return Key(str, None)


@dataclass(frozen=True)
class Kind:
    name: str
    classes: tuple[str, ...]
    hls4ml: bool
    da4ml: bool
    keys: dict[str, Key] = field(default_factory=dict)
    quantized: Callable[[dict[str, Any], str, Any], Any] | None = None
    float: Callable[[dict[str, Any], str], Any] | None = None
    weights: tuple[str, ...] = ()
    takes_input_quantizer: bool = False

    @property
    def card(self) -> bool:
        return self.quantized is not None


# ----------------------------------------------------------------------------- builders


def _q_dense(s: dict[str, Any], name: str, iq: Any):
    from hgq.layers import QDense

    return QDense(s["units"], activation=_act(s), name=name, **({"iq_conf": iq} if iq is not None else {}))


def _f_dense(s: dict[str, Any], name: str):
    import keras

    return keras.layers.Dense(s["units"], activation=_act(s), name=name)


def _q_conv2d(s: dict[str, Any], name: str, iq: Any):
    from hgq.layers import QConv2D

    return QConv2D(
        s["filters"], s["kernel"], activation=_act(s), name=name, **({"iq_conf": iq} if iq is not None else {})
    )


def _f_conv2d(s: dict[str, Any], name: str):
    import keras

    return keras.layers.Conv2D(s["filters"], s["kernel"], activation=_act(s), name=name)


def _q_maxpool2d(s: dict[str, Any], name: str, iq: Any):
    from hgq.layers import QMaxPool2D

    return QMaxPool2D(s["pool"], name=name, **({"iq_conf": iq} if iq is not None else {}))


def _f_maxpool2d(s: dict[str, Any], name: str):
    import keras

    return keras.layers.MaxPooling2D(s["pool"], name=name)


def _q_avgpool2d(s: dict[str, Any], name: str, iq: Any):
    from hgq.layers import QAvgPool2D

    return QAvgPool2D(s["pool"], name=name, **({"iq_conf": iq} if iq is not None else {}))


def _f_avgpool2d(s: dict[str, Any], name: str):
    import keras

    return keras.layers.AveragePooling2D(s["pool"], name=name)


def _q_flatten(s: dict[str, Any], name: str, iq: Any):
    import keras

    return keras.layers.Flatten(name=name)


def _f_flatten(s: dict[str, Any], name: str):
    import keras

    return keras.layers.Flatten(name=name)


def _act(s: dict[str, Any]) -> str | None:
    return None if s.get("activation", "linear") == "linear" else s["activation"]


_ACT = Key(str, "linear", choices=ACTIVATIONS)
# a pool whose area is a power of two: averaging is then a shift, exact at every level
_POOL = Key(int, 2, choices=(2, 4))

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "dense",
            ("QDense",),
            True,
            True,
            {"units": Key(int, lo=1, hi=4096), "activation": _ACT, "name": _name_key()},
            _q_dense,
            _f_dense,
            ("kernel", "bias"),
            True,
        ),
        Kind(
            "conv2d",
            ("QConv2D",),
            True,
            True,
            {
                "filters": Key(int, lo=1, hi=1024),
                "kernel": Key(int, 3, lo=1, hi=15),
                "activation": _ACT,
                "name": _name_key(),
            },
            _q_conv2d,
            _f_conv2d,
            ("kernel", "bias"),
            True,
        ),
        Kind(
            "maxpool2d",
            ("QMaxPool2D", "QMaxPooling2D"),
            True,
            True,
            {"pool": Key(int, 2, lo=1, hi=16), "name": _name_key()},
            _q_maxpool2d,
            _f_maxpool2d,
            (),
            True,
        ),
        Kind(
            "avgpool2d",
            ("QAvgPool2D", "QAveragePooling2D"),
            True,
            True,
            {"pool": _POOL, "name": _name_key()},
            _q_avgpool2d,
            _f_avgpool2d,
            (),
            True,
        ),
        Kind("flatten", ("Flatten",), True, True, {"name": _name_key()}, _q_flatten, _f_flatten),
        # layers a model may hold that no card asks for directly
        Kind("input", ("InputLayer",), True, True),
        Kind("quantizer", ("Quantizer",), True, True),  # hgq2's Quantizer (and its qkeras QActivation)
        Kind("subtract", ("QSubtract",), True, True),  # the anomaly score: x - reconstruction
        Kind("multiply", ("QMultiply",), True, True),  # ... squared
        Kind("add", ("QAdd",), True, True),
        Kind("reshape", ("Reshape",), True, True),
        Kind("einsum_dense_batchnorm", ("QEinsumDenseBatchnorm",), True, True),
        # layers of imported models (trigger_ml.interop.lower; README, "Import and export")
        Kind("conv1d", ("QConv1D",), True, True),
        Kind("batchnorm", ("QBatchNormalization",), True, True),  # exact form: epsilon 0, mean 0, variance 1
        Kind("softmax", ("QSoftmax",), True, True),  # stable, explicit table formats
        Kind("lut", ("QUnaryFunctionLUT",), True, True),  # allow_heterogeneous_table=False, tight input format
        Kind("maxpool1d", ("QMaxPool1D", "QMaxPooling1D"), True, True),
        Kind("avgpool1d", ("QAvgPool1D", "QAveragePooling1D"), True, True),  # power-of-two windows
        Kind("global_avgpool", ("QGlobalAveragePooling1D", "QGlobalAveragePooling2D"), True, True),
        Kind("global_maxpool", ("QGlobalMaxPooling1D", "QGlobalMaxPooling2D"), True, True),
        Kind("maximum", ("QMaximum",), True, True),
        Kind("concatenate", ("Concatenate",), True, True),  # equal shapes only (da4ml)
    )
}


def kind_of_class(cls: str) -> Kind | None:
    """The entry whose quantized layer has Keras class `cls`."""
    return next((k for k in KINDS.values() if cls in k.classes), None)


def card_kinds() -> list[str]:
    return [k.name for k in KINDS.values() if k.card]


def layer_name(spec: dict[str, Any], i: int) -> str:
    return spec.get("name") or f"{spec['type']}_{i}"


def check_spec(spec: Any, i: int, where: str) -> dict[str, Any]:
    """A card's layer spec validated against its kind; returns it with the defaults filled in."""
    if not isinstance(spec, dict):
        raise SchemaError(f"{where}: layer {i} is {spec!r}, not a mapping", "write each layer as {type: ..., ...}")
    kind = KINDS.get(spec.get("type"))  # type: ignore[arg-type]
    if kind is None or not kind.card:
        raise UnsupportedError(
            f"{where}: layer {i} has unknown type {spec.get('type')!r}", f"supported layer types: {card_kinds()}"
        )
    extra = sorted(set(spec) - set(kind.keys) - {"type"})
    if extra:
        raise SchemaError(
            f"{where}: layer {i} ({kind.name}) has unknown key {extra[0]!r}",
            f"keys of {kind.name}: {sorted(kind.keys)}",
        )
    out: dict[str, Any] = {"type": kind.name}
    for key, k in kind.keys.items():
        if key not in spec:
            if k.default is REQUIRED:
                raise SchemaError(f"{where}: layer {i} ({kind.name}) needs {key!r}", k.allowed())
            out[key] = k.default
            continue
        value = spec[key]
        if key == "name":
            if value is not None and (not isinstance(value, str) or not NAME.fullmatch(value)):
                raise SchemaError(
                    f"{where}: layer {i} name {value!r} is not an identifier",
                    "letters, digits and '_', starting with a letter, at most 64 characters",
                )
        else:
            value = k.check(value, f"{where}: layer {i} ({kind.name})", key)
        out[key] = value
    return out


def check_layers(layers: Any, where: str) -> tuple[dict[str, Any], ...]:
    """Every layer spec of a card validated, names unique; returns the specs as written (the
    builders fill the defaults in with `check_spec`)."""
    if not isinstance(layers, (list, tuple)) or not layers:
        raise SchemaError(f"{where}: 'layers' must be a non-empty list")
    if len(layers) > MAX_LAYERS:
        raise SchemaError(f"{where}: {len(layers)} layers", f"at most {MAX_LAYERS}")
    specs = [check_spec(s, i, where) for i, s in enumerate(layers)]
    names = [layer_name(s, i) for i, s in enumerate(specs)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SchemaError(f"{where}: layer name {dup[0]!r} is used twice", "give every layer its own name")
    return tuple(layers)
