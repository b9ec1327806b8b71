"""`LoopUnlearner`: the helper base for methods that are "an optimiser over some batches".

The harness owns the loop (optimiser, schedule, epochs, progress, train/eval mode); a subclass
writes `batch_loss` and, if it does not train on plain retain batches, `batches`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

import torch
from torch import nn

from mubench.unlearn.api import UnlearnContext, UnlearnData, Unlearner
from mubench.core.losses import task_loss
from mubench.train.training import fit, make_optimizer, make_scheduler
from mubench.core.ranges import BatchSize, Decay, Epochs, Momentum, Rate


@dataclass(frozen=True)
class LoopConfig:
    epochs: Epochs = 2  # passes over the method's batches
    lr: Rate = 1e-3  # learning rate
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: Momentum = 0.9  # SGD only
    weight_decay: Decay = 5e-4
    schedule: Literal["cosine", "constant"] = "cosine"  # per-step lr schedule over all epochs
    batch_size: BatchSize = 0  # 0: the task recipe's batch size


class LoopUnlearner(Unlearner):
    Config = LoopConfig

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
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(trainable, cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay)
        scheduler = make_scheduler(optimizer, cfg.schedule, cfg.epochs * max(1, len(epoch_batches)))
        fit(model, lambda epoch: epoch_batches, step_loss, optimizer, cfg.epochs, scheduler, ctx.progress,
            desc=self.registered_name or type(self).__name__)
        return model.requires_grad_(True)
