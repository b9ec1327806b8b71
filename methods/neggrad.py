"""NegGrad (Golatkar et al. 2020): gradient ascent on the forget set's task loss.

Hyperparameters are the DLFD authors' MUFAC notebook's (Choi & Na 2025); the lr is constant (their per-batch
`CosineAnnealingLR(T_max=2)` cycles rather than anneals, so it is not copied).

Budget, in optimiser steps. The notebook runs one pass over MUFAC's forget set, 1,500 images at batch 32: 47 SGD
steps at lr 1e-3 (momentum 0.9). Gradient ascent has no minimum to settle in: how far it moves the model is lr ×
steps (the gradient of the batch-mean loss does not grow with the batch or the set), so the authors' setting means
47 steps, and mubench keeps that (`min_steps = 47`), passing over forget as often as it takes, the last pass cut
short. At the task recipe's batch 64: digits random (189 forget) is 3 steps a pass, so ≈ 16 passes; digits
class-wise (128) 2 a pass, ≈ 24 passes; fer2013-mini (210) 4 a pass, ≈ 12 passes, 47 steps each. (One pass, the
ported epoch, was 3, 2 and 4 steps: the model stayed the Original on every board.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from mubench.unlearn.api import DataSizes, UnlearnContext, UnlearnData, register_method
from mubench.core.search import IntRange, LogUniform
from mubench.unlearn.loop import LoopConfig, LoopUnlearner, batches_of
from mubench.core.losses import task_loss
from mubench.core.ranges import BatchSize, Decay, Epochs, MinSteps, Momentum, Rate


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
        min_steps: MinSteps = 47  # SGD steps at least: the notebook's one pass over MUFAC forget (1,500 / 32)
    # mubench tune: lr and ascent steps (the budget's unit; extra passes come from the step floor)
    search_space = {"lr": LogUniform(1e-4, 1e-1), "min_steps": IntRange(10, 200, log=True)}

    def batches_per_pass(self, sizes: DataSizes) -> int:
        return batches_of(sizes.forget, self.batch_size_for(sizes))

    def batches(self, data: UnlearnData, ctx: UnlearnContext):
        return data.loader("forget", shuffle=True, augment=True, batch_size=self.config.batch_size or None,
                           seed=ctx.seed)

    def batch_loss(self, model: nn.Module, batch, data: UnlearnData, ctx: UnlearnContext) -> torch.Tensor:
        x, y = batch
        return -task_loss(model(x), y, data.kind)
