"""The grid: short keys for the card fields people scan, any `section.field` besides, and points.

A point is a set of card overrides; its id is the content hash of the card, the overrides, the
data and the scan options, so a finished point is found again on re-run and a changed card or
data set makes new points.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from trigger_ml.errors import TriggerMLError

# short key -> (card section, field); any "section.field" of the card is accepted as well
GRID_KEYS: dict[str, tuple[str, str]] = {
    "bits": ("quantization", "weight_bits"),
    "weight_integer": ("quantization", "weight_integer"),
    "act_bits": ("quantization", "act_frac_bits"),
    "sparsity": ("pruning", "default"),
    "strategy": ("firmware", "strategy"),
    "reuse": ("firmware", "reuse_factor"),
    "clock": ("firmware", "clock_ns"),
    "latency_cutoff": ("firmware", "latency_cutoff"),
    "epochs": ("training", "epochs"),
    "seed": ("training", "seed"),
}
# values written for people, spelled as the card spells them
VALUE_ALIASES: dict[tuple[str, str], dict[str, str]] = {
    ("firmware", "strategy"): {"da": "distributed_arithmetic"},
}


def field_of(key: str) -> tuple[str, str]:
    if key in GRID_KEYS:
        return GRID_KEYS[key]
    if key.count(".") == 1:
        sec, name = key.split(".")
        return sec, name
    raise TriggerMLError(
        f"unknown grid key {key!r}",
        f"use one of {', '.join(GRID_KEYS)} or a card field as section.field (e.g. training.batch_size)",
    )


def _value(text: str) -> Any:
    """YAML-like scalars: ints, floats, booleans, null, else the string."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_grid(specs: list[str]) -> dict[str, list[Any]]:
    """["bits=4,6,8", "strategy=latency,da"] -> {"bits": [4, 6, 8], "strategy": ["latency", "da"]}."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise TriggerMLError(f"bad --grid {spec!r}", "write --grid key=v1,v2,... (e.g. --grid bits=4,6,8)")
        field_of(key)
        if key in grid:
            raise TriggerMLError(f"--grid {key} given twice", "give each key once with all its values")
        grid[key] = [_value(v.strip()) for v in values.split(",") if v.strip()]
    return grid


def parse_point(spec: str) -> dict[str, Any]:
    """ "bits=3,strategy=bogus" -> one extra point {"bits": 3, "strategy": "bogus"}."""
    out: dict[str, Any] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise TriggerMLError(f"bad --point {spec!r}", "write --point key=value,key=value")
        field_of(key.strip())
        out[key.strip()] = _value(value.strip())
    return out


@dataclass(frozen=True)
class Point:
    """One configuration: the grid values (as given) and the content hash that names it."""

    params: tuple[tuple[str, Any], ...]
    id: str

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.params) or "card"

    def overrides(self) -> dict[str, dict[str, Any]]:
        """Card overrides by section, e.g. {"quantization": {"weight_bits": 4}}."""
        out: dict[str, dict[str, Any]] = {}
        for key, value in self.params:
            sec, name = field_of(key)
            out.setdefault(sec, {})[name] = (
                VALUE_ALIASES.get((sec, name), {}).get(value, value) if isinstance(value, str) else value
            )
        return out


def points(grid: dict[str, list[Any]], extra: list[dict[str, Any]], salt: str) -> list[Point]:
    """The cartesian product of the grid, then the extra points; duplicates dropped, order kept.

    `salt` is the content hash of everything else a point depends on (card, data, options)."""
    from trigger_ml.compile.cache import digest

    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] if grid else []
    out, seen = [], set()
    for c in combos + extra:
        params = tuple(c.items())
        pid = digest(salt, json.dumps(sorted(c.items()), default=str))[:12]
        if pid not in seen:
            seen.add(pid)
            out.append(Point(params, pid))
    if not out:
        raise TriggerMLError("the scan has no points", "give at least one --grid key=v1,v2 or --point")
    return out
