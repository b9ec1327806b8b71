"""NegGrad+ (Kurmanji et al. 2023): β·loss(retain) − (1−β)·loss(forget) on paired retain / forget batches."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from mubench.api import UnlearnContext, UnlearnData, register_method
from mubench.data import BatchLoader
from mubench.errors import MubenchError
from mubench.loop import LoopConfig, LoopUnlearner
from mubench.losses import task_loss


class RetainWithForget:
    """One epoch: every retain batch, each paired with the next forget batch (forget restarts, reshuffled,
    when it runs out), as in Kurmanji et al.'s `zip(retain_loader, cycle(forget_loader))`."""

    def __init__(self, retain: BatchLoader, forget: BatchLoader):
        if len(forget) == 0:
            raise MubenchError("neggrad+ needs a non-empty forget set.")
        self.retain, self.forget = retain, forget

    def __len__(self) -> int:
        return len(self.retain)

    def __iter__(self):
        return zip(self.retain, self._endless_forget())

    def _endless_forget(self):
        while True:
            yield from self.forget


@register_method("neggrad+")
class NegGradPlus(LoopUnlearner):
    @dataclass(frozen=True)
    class Config(LoopConfig):
        beta: float = 0.999  # weight of the retain loss; Kurmanji et al. 2023 (the MUFAC notebook uses 0.5)
        epochs: int = 1  # passes over retain; spec/baselines.md
        lr: float = 1e-3  # spec/baselines.md (SGD)
        optimizer: Literal["sgd", "adam"] = "sgd"  # as neggrad in the DLFD authors' MUFAC notebook
        momentum: float = 0.9  # as neggrad in the DLFD authors' MUFAC notebook
        weight_decay: float = 5e-4  # as neggrad in the DLFD authors' MUFAC notebook
        schedule: Literal["cosine", "constant"] = "constant"  # spec/baselines.md gives no schedule
        batch_size: int = 0  # retain and forget batch size; 0: the task recipe's

    ablations = {"beta0.5": {"beta": 0.5}}  # the DLFD authors' MUFAC notebook ("advanced NegGrad")

    def batches(self, data: UnlearnData, ctx: UnlearnContext) -> RetainWithForget:
        size = self.config.batch_size or None
        return RetainWithForget(data.loader("retain", shuffle=True, augment=True, batch_size=size, seed=ctx.seed),
                                data.loader("forget", shuffle=True, augment=True, batch_size=size, seed=ctx.seed))

    def batch_loss(self, model: nn.Module, batch, data: UnlearnData, ctx: UnlearnContext) -> torch.Tensor:
        (x_retain, y_retain), (x_forget, y_forget) = batch
        beta = self.config.beta
        return (beta * task_loss(model(x_retain), y_retain, data.kind)
                - (1 - beta) * task_loss(model(x_forget), y_forget, data.kind))
