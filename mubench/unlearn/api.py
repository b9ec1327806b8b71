"""The contract between the harness and an unlearning method.

A method sees `UnlearnData` (retain, forget, val: never test) and `UnlearnContext` (device, seed,
progress, metric logging, `monitor()`), and returns the unlearned model.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterable, NamedTuple

import torch
from torch import nn

from mubench.data.splits import BatchLoader, Preprocess, Split
from mubench.core.errors import MubenchError
from mubench.core.losses import TaskKind
from mubench.core.progress import bar
from mubench.core.registry import Registry
from mubench.core.search import Dimension

METHODS: Registry[type["Unlearner"]] = Registry("method", {
    "original": "mubench.methods.references:Original",
    "retrain": "mubench.methods.references:Retrain",
    "finetune": "mubench.methods.finetune:Finetune",
    "neggrad": "mubench.methods.neggrad:NegGrad",
    "neggrad+": "mubench.methods.neggrad_plus:NegGradPlus",
    "cf-k": "mubench.methods.cf_k:CFk",
    "eu-k": "mubench.methods.eu_k:EUk",
    "unsir": "mubench.methods.unsir:UNSIR",
    "bad-teaching": "mubench.methods.bad_teaching:BadTeaching",
    "scrub": "mubench.methods.scrub:SCRUB",
    "dlfd": "mubench.methods.dlfd:DLFD",
    "random-label": "mubench.methods.random_label:RandomLabel",
    "salun": "mubench.methods.salun:SalUn",
    "ssd": "mubench.methods.ssd:SSD",
    "l1-sparse": "mubench.methods.l1_sparse:L1Sparse",
}, entry_point_group="mubench.methods")


def register_method(name: str):
    """Class decorator: `@register_method("scrub")` makes the class available as `--methods scrub`."""
    return METHODS.register(name)


class Unlearner(ABC):
    """Base of every method. `__init__` only stores the frozen `Config`; `unlearn` does the work."""

    @dataclass(frozen=True)
    class Config:
        pass

    supports_multilabel: ClassVar[bool] = True  # False: the harness records a clear refusal instead
    # Ablation variants run by `mubench run --ablate`: variant name -> Config fields it changes.
    ablations: ClassVar[dict[str, dict[str, object]]] = {}
    # Named per-task defaults (e.g. the authors' MUFAC values): task name -> Config fields; --set wins over them.
    task_defaults: ClassVar[dict[str, dict[str, object]]] = {}
    # What `mubench tune` searches: Config field -> dimension (mubench.core.search); the defaults lie inside. Empty: the
    # method is tuned over nothing and `tune` says so.
    search_space: ClassVar[dict[str, Dimension]] = {}
    registered_name: ClassVar[str] = ""

    def __init__(self, config: "Unlearner.Config | None" = None):
        if config is None:
            config = self.Config()
        if not isinstance(config, self.Config):
            raise MubenchError(f"{type(self).__name__} needs a {type(self).__name__}.Config, "
                               f"got {type(config).__name__}.")
        self.config = config

    @abstractmethod
    def unlearn(self, model: nn.Module, data: "UnlearnData", ctx: "UnlearnContext") -> nn.Module:
        """Return the unlearned model; `model` is a private copy of the original."""

    def derived_steps(self, sizes: "DataSizes") -> int:
        """The fewest optimiser steps this configuration must take on data of `sizes`, as the method's budget
        derivation (its docstring) carries the authors' setting over to these sizes; 0 for a method that runs no
        optimiser. `unlearn` must take at least this many (the method tests count them)."""
        return 0


class DataSizes(NamedTuple):
    """What a budget derivation reads of a task: split sizes, classes and the recipe's batch size."""
    retain: int
    forget: int
    val: int
    classes: int
    batch_size: int

    @classmethod
    def of(cls, data: "UnlearnData") -> "DataSizes":
        return cls(len(data.retain), len(data.forget), len(data.val), data.num_outputs, data.batch_size)


@dataclass
class UnlearnData:
    retain: Split
    forget: Split
    val: Split
    kind: TaskKind
    num_outputs: int
    preprocess: Preprocess
    batch_size: int  # the task recipe's batch size, a sensible default for methods
    device: torch.device

    def loader(self, role: str, *, shuffle: bool = True, augment: bool = False, batch_size: int | None = None,
               seed: int = 0, drop_last: bool = False) -> BatchLoader:
        if role not in ("retain", "forget", "val"):
            raise MubenchError(f"role {role!r} is not available to a method; use retain, forget or val.")
        return BatchLoader(getattr(self, role), self.preprocess, batch_size or self.batch_size, shuffle=shuffle,
                           augment=augment, seed=seed, device=self.device, drop_last=drop_last)


class MonitorReading(NamedTuple):
    forgetting_score: float  # FS = 2|MIA - 0.5| on forget (members) vs val (non-members)
    mia: float
    val_accuracy: float


@dataclass
class UnlearnContext:
    device: torch.device
    seed: int
    quiet: bool
    _monitor: Callable[[nn.Module], MonitorReading]
    _retrained: Callable[[], tuple[nn.Module, float]]
    _log_metric: Callable[[str, float, int], None]
    borrowed_seconds: float = 0.0  # training time of references a method reuses, charged to its time

    def progress(self, iterable: Iterable, desc: str, total: int | None = None) -> Iterable:
        return bar(iterable, desc, total, self.quiet)

    def log_metric(self, name: str, value: float, step: int = 0) -> None:
        self._log_metric(name, float(value), step)

    def monitor(self, model: nn.Module) -> MonitorReading:
        """FS and val accuracy of `model` now; leaves the model in the mode it was in."""
        was_training = model.training
        try:
            return self._monitor(model)
        finally:
            model.train(was_training)

    def retrained_model(self) -> nn.Module:
        """A copy of the cached model trained on retain only; its training time is charged to the method."""
        model, seconds = self._retrained()
        self.borrowed_seconds += seconds
        return model
