"""Fine-tuning (Golatkar et al. 2020; Warnecke et al. 2023): keep training on retain only.

Hyperparameters are the DLFD authors' MUFAC notebook's (Choi & Na 2025), except the schedule: their
`CosineAnnealingLR(T_max=2)` is stepped every batch, so its lr cycles with a period of four batches instead of
annealing over the run; we keep the lr constant.

Budget, in passes over retain. The notebook's 2 epochs are 2 passes over MUFAC's retain set (8,525 images at batch
32: 534 SGD steps). Fine-tuning forgets only by drifting while it keeps fitting retain, so what its budget means is
its share of the Original's training on the same data: MUFAC's Original trains 30 passes (the MUFAC benchmark's
recipe; 100 in the DLFD code), so 2 passes are a fifteenth of it or less. mubench's Originals train 20 (digits) and
30 (fer2013-mini) passes, so the 2 passes carry over as passes; 534 steps would be more than the digits Original's
whole training (20 × 20 = 400 steps). Our retain sets hold 107-170 images per class against MUFAC's ~1,070, so a
pass is fewer steps, as it is for the Original. At batch 64: 2 × 17 = 34 steps (digits random, 1,068 retain),
2 × 18 = 36 (digits class-wise, 1,129), 2 × 19 = 38 (fer2013-mini, 1,190).
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
