"""Fine-tuning (Golatkar et al. 2020; Warnecke et al. 2023): keep training on retain only.

Hyperparameters are the DLFD authors' MUFAC notebook's (Choi & Na 2025), except the schedule: their
`CosineAnnealingLR(T_max=2)` is stepped every batch, so its lr cycles with a period of four batches instead of
annealing over the run; we keep the lr constant.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mubench.unlearn.api import register_method
from mubench.core.search import IntRange, LogUniform
from mubench.unlearn.loop import LoopConfig, LoopUnlearner
from mubench.core.ranges import BatchSize, Decay, Epochs, Momentum, Rate


@register_method("finetune")
class Finetune(LoopUnlearner):
    @dataclass(frozen=True)
    class Config(LoopConfig):
        epochs: Epochs = 2  # passes over retain; DLFD authors' MUFAC notebook
        lr: Rate = 1e-3  # SGD; DLFD authors' MUFAC notebook
        optimizer: Literal["sgd", "adam"] = "sgd"  # DLFD authors' MUFAC notebook
        momentum: Momentum = 0.9  # DLFD authors' MUFAC notebook
        weight_decay: Decay = 5e-4  # DLFD authors' MUFAC notebook
        schedule: Literal["cosine", "constant"] = "constant"  # their per-batch cosine cycles; see the docstring
        batch_size: BatchSize = 0  # retain batch size; 0: the task recipe's
    search_space = {"lr": LogUniform(1e-4, 1e-1), "epochs": IntRange(1, 5)}  # mubench tune: lr and passes over retain
