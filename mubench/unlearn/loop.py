"""`LoopUnlearner`: the helper base for methods that are "an optimiser over some batches".

The harness owns the loop (optimiser, schedule, epochs, progress, train/eval mode); a subclass
writes `batch_loss` and, if it does not train on plain retain batches, `batches` and `batches_per_pass`.

Budgets: a method's budget is what its authors fixed, in the unit they scaled (its module docstring derives it).
Where that unit is optimiser steps, `min_steps` holds the authors' count: the loop then runs `epochs` passes, or
more when they fall short of `min_steps`, the last pass cut short, so that it takes exactly
max(min_steps, epochs × batches per pass) steps (`StepBudget`) whatever the task's size. `derived_steps` gives
that count from a task's sizes alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Callable, Iterable, Literal

import torch
from torch import nn

from mubench.unlearn.api import DataSizes, UnlearnContext, UnlearnData, Unlearner
from mubench.core.losses import task_loss
from mubench.train.training import fit, make_optimizer, make_scheduler
from mubench.core.ranges import BatchSize, Decay, Epochs, MinSteps, Momentum, Rate


def batches_of(items: int, batch_size: int) -> int:
    """Batches in one pass over `items` (the last one short, as the loaders keep it)."""
    return -(-items // max(1, batch_size))


class FirstBatches:
    """The first `count` batches of one pass over `batches`."""

    def __init__(self, batches: Iterable, count: int):
        self.batches, self.count = batches, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return islice(iter(self.batches), self.count)


class StepBudget:
    """Passes over `per_pass` batches that take exactly max(min_steps, epochs × per_pass) optimiser steps: `epochs`
    passes, or more when those fall short of `min_steps`, the last one cut short."""

    def __init__(self, per_pass: int, epochs: int, min_steps: int = 0):
        self.per_pass = per_pass
        self.total = max(min_steps, epochs * per_pass) if per_pass > 0 else 0
        self.passes = batches_of(self.total, per_pass) if per_pass > 0 else epochs

    def of(self, batches: Iterable) -> Callable[[int], Iterable]:
        """`fit`'s batches(epoch): `batches` itself for every pass, the last cut to the steps left."""
        def one_pass(epoch: int) -> Iterable:
            left = self.total - epoch * self.per_pass
            return batches if left >= self.per_pass else FirstBatches(batches, left)
        return one_pass


@dataclass(frozen=True)
class LoopConfig:
    epochs: Epochs = 2  # passes over the method's batches
    lr: Rate = 1e-3  # learning rate
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: Momentum = 0.9  # SGD only
    weight_decay: Decay = 5e-4
    schedule: Literal["cosine", "constant"] = "cosine"  # per-step lr schedule over all epochs
    batch_size: BatchSize = 0  # 0: the task recipe's batch size
    min_steps: MinSteps = 0  # fewest optimiser steps; passes are added (the last cut short) to reach it; 0: none


class LoopUnlearner(Unlearner):
    Config = LoopConfig

    def batch_size_for(self, sizes: DataSizes) -> int:
        """The batch size this configuration uses on data of `sizes`."""
        return self.config.batch_size or sizes.batch_size

    def batches_per_pass(self, sizes: DataSizes) -> int:
        """How many batches `batches` yields per pass on data of `sizes`; by default one pass over retain."""
        return batches_of(sizes.retain, self.batch_size_for(sizes))

    def derived_steps(self, sizes: DataSizes) -> int:
        return StepBudget(self.batches_per_pass(sizes), self.config.epochs, self.config.min_steps).total

    def budget(self, per_pass: int) -> StepBudget:
        return StepBudget(per_pass, self.config.epochs, self.config.min_steps)

    def batches(self, data: UnlearnData, ctx: UnlearnContext) -> Iterable:
        """The batches of one epoch; by default the retain set, shuffled, with the task's augmentation."""
        return data.loader("retain", shuffle=True, augment=True, batch_size=self.config.batch_size or None,
                           seed=ctx.seed)

    def batch_loss(self, model: nn.Module, batch, data: UnlearnData, ctx: UnlearnContext) -> torch.Tensor:
        """By default the task loss on the batch (fine-tuning)."""
        x, y = batch
        return task_loss(model(x), y, data.kind)

    def trained_modules(self, model: nn.Module) -> list[nn.Module] | None:
        """The modules that learn; None: the whole model. The rest is frozen: no gradient, eval mode (BatchNorm
        statistics kept)."""
        return None

    def prepare(self, model: nn.Module, data: UnlearnData, ctx: UnlearnContext) -> None:
        """Called once before the loop (e.g. to re-initialise the modules that will learn)."""

    def unlearn(self, model: nn.Module, data: UnlearnData, ctx: UnlearnContext) -> nn.Module:
        cfg = self.config
        self.prepare(model, data, ctx)
        modules = self.trained_modules(model)
        if modules is not None:
            open_ids = {id(p) for module in modules for p in module.parameters()}
            for p in model.parameters():
                p.requires_grad_(id(p) in open_ids)

        def step_loss(m: nn.Module, batch) -> torch.Tensor:
            if modules is not None:  # fit() puts the whole model in train mode before each step
                m.eval()
                for module in modules:
                    module.train()
            return self.batch_loss(m, batch, data, ctx)

        epoch_batches = self.batches(data, ctx)
        budget = self.budget(len(epoch_batches))
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(trainable, cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay)
        scheduler = make_scheduler(optimizer, cfg.schedule, max(1, budget.total))
        fit(model, budget.of(epoch_batches), step_loss, optimizer, budget.passes, scheduler, ctx.progress,
            desc=self.registered_name or type(self).__name__)
        return model.requires_grad_(True)
