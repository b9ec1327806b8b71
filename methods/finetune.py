"""Fine-tuning (Golatkar et al. 2020; Warnecke et al. 2023): keep training on retain only."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mubench.api import register_method
from mubench.loop import LoopConfig, LoopUnlearner


@register_method("finetune")
class Finetune(LoopUnlearner):
    @dataclass(frozen=True)
    class Config(LoopConfig):
        epochs: int = 2  # DLFD authors' MUFAC notebook
        lr: float = 1e-3  # DLFD authors' MUFAC notebook (SGD)
        optimizer: Literal["sgd", "adam"] = "sgd"
        momentum: float = 0.9  # DLFD authors' MUFAC notebook
        weight_decay: float = 5e-4  # DLFD authors' MUFAC notebook
        schedule: Literal["cosine", "constant"] = "cosine"  # DLFD authors' MUFAC notebook (CosineAnnealingLR)
