"""NegGrad+ (Kurmanji et al. 2023): β·loss(retain) − (1−β)·loss(forget) on paired retain / forget batches.

Defaults follow the official SCRUB code (meghdadk/SCRUB), which runs NegGrad+ as a baseline: SGD lr 0.01 with
momentum 0.9 and weight decay 5e-4, 5 epochs (it uses 5-10), and β (`ng_alpha` there) = 0.95, its small-scale
setting. Its other value, 0.9999 (its large-scale MIA experiments), weights the forget term 1e-4, which on
forget sets of hundreds of images makes the method fine-tuning in all but name; mubench's tasks are small-scale
(thousands of training images). The DLFD authors' MUFAC notebook's "advanced NegGrad" (CE_r − CE_f, i.e.
β = 0.5 up to a factor 2) is the `beta0.5` ablation.

One epoch is every retain batch, each paired with the next forget batch (forget restarts, reshuffled, when it
runs out), as the official code's `zip(retain_loader, cycle(forget_loader))`.

Budget, in passes over retain. The SCRUB code's 5 epochs are 5 passes over retain, each retain batch paired with a
forget batch; its small-scale setting (the one β = 0.95 belongs to) keeps 100 training images per class (SCRUB
paper, after Golatkar et al.), the same order as mubench's 107-170 retain images per class, so a pass means the same
thing and the 5 passes carry over: at batch 64, 5 × 17 = 85 steps (digits random), 5 × 18 = 90 (digits class-wise),
5 × 19 = 95 (fer2013-mini).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from mubench.unlearn.api import UnlearnContext, UnlearnData, register_method
from mubench.core.search import IntRange, LogUniform, Uniform
from mubench.data.splits import BatchLoader
from mubench.core.errors import MubenchError
from mubench.unlearn.loop import LoopConfig, LoopUnlearner
from mubench.core.losses import TaskKind, task_loss
from mubench.unlearn.method_tools import endless
from mubench.core.ranges import BatchSize, Decay, Epochs, Momentum, Rate, Unit


class RetainWithForget:
    """One epoch: every retain batch, each paired with the next forget batch of an endless forget loader."""

    def __init__(self, retain: BatchLoader, forget: BatchLoader):
        if len(forget) == 0:
            raise MubenchError("neggrad+ needs a non-empty forget set.")
        self.retain, self.forget = retain, forget

    def __len__(self) -> int:
        return len(self.retain)

    def __iter__(self):
        return zip(self.retain, endless(self.forget))


def neggrad_plus_loss(retain_logits: torch.Tensor, retain_targets: torch.Tensor, forget_logits: torch.Tensor,
                      forget_targets: torch.Tensor, beta: float, kind: TaskKind) -> torch.Tensor:
    """β·loss(retain) − (1−β)·loss(forget), each the batch-mean task loss."""
    return (beta * task_loss(retain_logits, retain_targets, kind)
            - (1 - beta) * task_loss(forget_logits, forget_targets, kind))


@register_method("neggrad+")
class NegGradPlus(LoopUnlearner):
    @dataclass(frozen=True)
    class Config(LoopConfig):
        beta: Unit = 0.95  # weight of the retain loss (ng_alpha); official SCRUB code, small-scale setting
        epochs: Epochs = 5  # passes over retain; official SCRUB code (5-10)
        lr: Rate = 0.01  # SGD; official SCRUB code
        optimizer: Literal["sgd", "adam"] = "sgd"  # official SCRUB code
        momentum: Momentum = 0.9  # official SCRUB code
        weight_decay: Decay = 5e-4  # official SCRUB code
        schedule: Literal["cosine", "constant"] = "constant"  # our choice: no decay over the few epochs
        batch_size: BatchSize = 0  # retain and forget batch size; 0: the task recipe's
    # mubench tune: the retain/forget balance, lr, passes
    search_space = {"beta": Uniform(0.5, 1.0), "lr": LogUniform(1e-3, 1e-1), "epochs": IntRange(1, 8)}

    # DLFD authors' MUFAC notebook: CE_r − CE_f, plain SGD lr 1e-3, 2 epochs = β 0.5 at lr 2e-3
    ablations = {"beta0.5": {"beta": 0.5, "epochs": 2, "lr": 2e-3, "momentum": 0.0, "weight_decay": 0.0}}

    def batches(self, data: UnlearnData, ctx: UnlearnContext) -> RetainWithForget:
        size = self.config.batch_size or None
        return RetainWithForget(data.loader("retain", shuffle=True, augment=True, batch_size=size, seed=ctx.seed),
                                data.loader("forget", shuffle=True, augment=True, batch_size=size, seed=ctx.seed))

    def batch_loss(self, model: nn.Module, batch, data: UnlearnData, ctx: UnlearnContext) -> torch.Tensor:
        (x_retain, y_retain), (x_forget, y_forget) = batch
        return neggrad_plus_loss(model(x_retain), y_retain, model(x_forget), y_forget, self.config.beta, data.kind)
