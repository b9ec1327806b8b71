"""Valid ranges of Config fields, declared in the field's type: `lr: Rate = 1e-3`, `epochs: Epochs = 2`.

A numeric field is `Annotated[int | float, Range(...)]`. Values outside the range are refused before any work;
values above `usual` (budgets of days, learning rates of 100) are refused unless the user says `--yes`.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Annotated, Any

from mubench.core.errors import MubenchError


@dataclass(frozen=True)
class Range:
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False  # lo itself is excluded
    hi_open: bool = False
    usual: float = math.inf  # above it a value needs --yes
    meaning: str = ""  # what a special value means, said in the message (e.g. "0: the task recipe's")

    def holds(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def __str__(self) -> str:
        low = (">" if self.lo_open else "≥") + f" {self.lo:g}" if math.isfinite(self.lo) else ""
        high = ("<" if self.hi_open else "≤") + f" {self.hi:g}" if math.isfinite(self.hi) else ""
        text = " and ".join(part for part in (low, high) if part) or "finite"
        return f"{text} ({self.meaning})" if self.meaning else text


Epochs = Annotated[int, Range(1, usual=1000)]  # passes over a split
Steps = Annotated[int, Range(1, usual=100_000)]  # optimiser steps, intervals in steps
MinSteps = Annotated[int, Range(0, usual=100_000, meaning="0: no floor")]  # floors on optimiser steps
Rounds = Annotated[int, Range(0, usual=1000)]  # optional passes (0: none)
Stages = Annotated[int, Range(1, usual=16)]  # backbone stages, from the output end
Rate = Annotated[float, Range(0, lo_open=True, usual=10.0)]  # learning rates
Momentum = Annotated[float, Range(0, 1, hi_open=True)]
Decay = Annotated[float, Range(0, usual=1.0)]  # weight decay, L2 penalties
Positive = Annotated[float, Range(0, lo_open=True, usual=10_000.0)]  # step sizes, multipliers, regularisers
Weight = Annotated[float, Range(0, usual=10_000.0)]  # loss weights, thresholds of non-negative quantities
Unit = Annotated[float, Range(0, 1)]  # probabilities, mixing weights, scores in [0, 1]
Fraction = Annotated[float, Range(0, 1, lo_open=True)]  # a non-empty share of a split or of the weights
Temperature = Annotated[float, Range(0, lo_open=True, usual=1000.0)]
BatchSize = Annotated[int, Range(0, usual=65_536, meaning="0: the task recipe's")]
Size = Annotated[int, Range(1, usual=65_536)]  # batch sizes with no recipe default, counts of items


def field_ranges(config_cls: type) -> dict[str, Range]:
    """Field -> its declared Range, for the fields that declare one."""
    hints = typing.get_type_hints(config_cls, include_extras=True)
    out = {}
    for field in dataclasses.fields(config_cls):
        ranges = [m for m in getattr(hints[field.name], "__metadata__", ()) if isinstance(m, Range)]
        if ranges:
            out[field.name] = ranges[0]
    return out


def unranged_fields(config_cls: type) -> list[str]:
    """The int and float fields that declare no Range (every numeric field must)."""
    hints = typing.get_type_hints(config_cls)
    ranged = field_ranges(config_cls)
    return [f.name for f in dataclasses.fields(config_cls)
            if hints[f.name] in (int, float) and f.name not in ranged]


def check_value(where: str, name: str, value: Any, rng: Range, unusual_ok: bool) -> None:
    """One sentence when `value` lies outside `rng`, or above its usual bound without --yes."""
    if isinstance(value, float) and not math.isfinite(value):
        raise MubenchError(f"{where}={value!r} is not a finite number: {name} must be {rng}.")
    if not rng.holds(value):
        raise MubenchError(f"{where}={value!r} is out of range: {name} must be {rng}.")
    if value > rng.usual and not unusual_ok:
        raise MubenchError(f"{where}={value!r} is far above the usual {name} (≤ {rng.usual:g}) and would run for "
                           f"very long or diverge; pass --yes if you mean it.")


def check_config(config, where: str, fields: typing.Iterable[str] | None = None, unusual_ok: bool = True) -> None:
    """Every (or each named) field of `config` within its declared range."""
    for name, rng in field_ranges(type(config)).items():
        if fields is None or name in fields:
            check_value(f"{where}.{name}", name, getattr(config, name), rng, unusual_ok)


def space_outside_ranges(config_cls: type, space: dict) -> list[str]:
    """The search-space dimensions that reach values their field's Range refuses."""
    ranges = field_ranges(config_cls)
    out = []
    for name, dim in space.items():
        rng = ranges.get(name)
        ends = getattr(dim, "options", None) or (dim.lo, dim.hi)
        if rng is not None and not all(rng.holds(v) and v <= rng.usual for v in ends if not isinstance(v, str)):
            out.append(f"{name}: {dim} reaches outside {rng}" + (f", usual ≤ {rng.usual:g}"
                                                                  if math.isfinite(rng.usual) else ""))
    return out
