"""Search spaces for `mubench tune`: the dimensions a method declares next to its Config.

    search_space = {"lr": LogUniform(1e-4, 1e-1), "epochs": IntRange(1, 5)}

Each dimension asks an Optuna trial for a value (`suggest`) and says whether a value lies in it (`contains`): a
method's defaults must, so the tuned configuration competes with the paper's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from mubench.core.errors import MubenchError


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly in [lo, hi]."""
    lo: float
    hi: float
    log: ClassVar[bool] = False

    def __post_init__(self):
        floor = 0.0 if self.log else -math.inf
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and floor < self.lo < self.hi):
            raise MubenchError(f"{type(self).__name__}({self.lo}, {self.hi}) needs finite "
                               f"{'0 < lo < hi' if self.log else 'lo < hi'}.")

    def suggest(self, trial, name: str) -> float:
        return trial.suggest_float(name, self.lo, self.hi, log=self.log)

    def contains(self, value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.lo <= value <= self.hi

    def __str__(self) -> str:
        return f"{'log-uniform' if self.log else 'uniform'} [{self.lo:g}, {self.hi:g}]"


@dataclass(frozen=True)
class LogUniform(Uniform):
    """A float drawn on a log scale in [lo, hi] (learning rates, loss weights)."""
    log: ClassVar[bool] = True


@dataclass(frozen=True)
class IntRange:
    """An integer in [lo, hi], both included (epochs, steps)."""
    lo: int
    hi: int
    log: bool = False

    def __post_init__(self):
        if not (isinstance(self.lo, int) and isinstance(self.hi, int) and self.lo < self.hi) or \
                (self.log and self.lo < 1):
            raise MubenchError(f"IntRange({self.lo}, {self.hi}) needs integers lo < hi (lo ≥ 1 on a log scale).")

    def suggest(self, trial, name: str) -> int:
        return trial.suggest_int(name, self.lo, self.hi, log=self.log)

    def contains(self, value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.lo <= value <= self.hi

    def __str__(self) -> str:
        return f"integer [{self.lo}, {self.hi}]"


@dataclass(frozen=True)
class Choice:
    """One of a few values (toggles, named variants)."""
    options: tuple

    def __init__(self, *options):
        if len(options) < 2 or len(set(options)) != len(options):
            raise MubenchError(f"Choice{options} needs at least two distinct options.")
        object.__setattr__(self, "options", tuple(options))

    def suggest(self, trial, name: str):
        return trial.suggest_categorical(name, list(self.options))

    def contains(self, value) -> bool:
        return any(type(value) is type(o) and value == o for o in self.options)

    def __str__(self) -> str:
        return f"one of {', '.join(map(str, self.options))}"


Dimension = Uniform | LogUniform | IntRange | Choice


def outside_space(space: dict[str, Dimension], config) -> list[str]:
    """The fields of `config` that lie outside their dimension (or that the Config does not have)."""
    return [f"{name}={getattr(config, name, '<no such field>')!r} not in {dim}" for name, dim in space.items()
            if not hasattr(config, name) or not dim.contains(getattr(config, name))]
