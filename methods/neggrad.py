"""NegGrad (Golatkar et al. 2020): gradient ascent on the forget set's task loss.

Hyperparameters are the DLFD authors' MUFAC notebook's (Choi & Na 2025); the lr is constant over the one pass
(their per-batch `CosineAnnealingLR(T_max=2)` cycles rather than anneals, so it is not copied).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from mubench.unlearn.api import UnlearnContext, UnlearnData, register_method
from mubench.core.search import IntRange, LogUniform
from mubench.unlearn.loop import LoopConfig, LoopUnlearner
from mubench.core.losses import task_loss
from mubench.core.ranges import BatchSize, Decay, Epochs, Momentum, Rate


@register_method("neggrad")
class NegGrad(LoopUnlearner):
    @dataclass(frozen=True)
    class Config(LoopConfig):
        epochs: Epochs = 1  # passes over forget; DLFD authors' MUFAC notebook
        lr: Rate = 1e-3  # SGD; DLFD authors' MUFAC notebook
        optimizer: Literal["sgd", "adam"] = "sgd"  # DLFD authors' MUFAC notebook
        momentum: Momentum = 0.9  # DLFD authors' MUFAC notebook
        weight_decay: Decay = 5e-4  # DLFD authors' MUFAC notebook
        schedule: Literal["cosine", "constant"] = "constant"  # Golatkar et al. give none; see the docstring
        batch_size: BatchSize = 0  # forget batch size; 0: the task recipe's
    search_space = {"lr": LogUniform(1e-4, 1e-1), "epochs": IntRange(1, 5)}  # mubench tune: lr and passes over forget

    def batches(self, data: UnlearnData, ctx: UnlearnContext):
        return data.loader("forget", shuffle=True, augment=True, batch_size=self.config.batch_size or None,
                           seed=ctx.seed)

    def batch_loss(self, model: nn.Module, batch, data: UnlearnData, ctx: UnlearnContext) -> torch.Tensor:
        x, y = batch
        return -task_loss(model(x), y, data.kind)
