"""`LoopUnlearner`: the helper base for methods that are "an optimiser over some batches".

The harness owns the loop (optimiser, schedule, epochs, progress, train/eval mode); a subclass
writes `batch_loss` and, if it does not train on plain retain batches, `batches`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

import torch
from torch import nn

from mubench.api import UnlearnContext, UnlearnData, Unlearner
from mubench.training import fit, make_optimizer, make_scheduler


@dataclass(frozen=True)
class LoopConfig:
    epochs: int = 2  # passes over the method's batches
    lr: float = 1e-3  # learning rate
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = 0.9  # SGD only
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "constant"] = "cosine"  # per-step lr schedule over all epochs
    batch_size: int = 0  # 0: the task recipe's batch size


class LoopUnlearner(Unlearner):
    Config = LoopConfig

    def batches(self, data: UnlearnData, ctx: UnlearnContext) -> Iterable:
        """The batches of one epoch; by default the retain set, shuffled, with the task's augmentation."""
        return data.loader("retain", shuffle=True, augment=True, batch_size=self.config.batch_size or None,
                           seed=ctx.seed)

    def batch_loss(self, model: nn.Module, batch, data: UnlearnData, ctx: UnlearnContext) -> torch.Tensor:
        raise NotImplementedError

    def trainable(self, model: nn.Module) -> Iterable[nn.Parameter]:
        return model.parameters()

    def unlearn(self, model: nn.Module, data: UnlearnData, ctx: UnlearnContext) -> nn.Module:
        cfg = self.config
        epoch_batches = self.batches(data, ctx)
        optimizer = make_optimizer(self.trainable(model), cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay)
        scheduler = make_scheduler(optimizer, cfg.schedule, cfg.epochs * max(1, len(epoch_batches)))
        fit(model, lambda epoch: epoch_batches, lambda m, b: self.batch_loss(m, b, data, ctx), optimizer,
            cfg.epochs, scheduler, ctx.progress, desc=self.registered_name or type(self).__name__)
        return model
