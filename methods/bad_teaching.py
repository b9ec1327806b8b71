"""Bad Teaching (Chundawat et al. 2023): distil a competent teacher on retain and an incompetent one on forget.

The student starts as the original model. On each sample of the unlearning set (all of forget plus a
random retain subset) it matches, by KL at temperature T, the competent teacher (the original) where
the sample is retained and a randomly initialised teacher where it is forgotten. Unlike the DLFD
authors' code, which never reads the forget loader, the forget samples are in every epoch.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from mubench.api import UnlearnContext, UnlearnData, Unlearner, register_method
from mubench.data import BatchLoader, Split
from mubench.losses import TaskKind, distill_kl, soft_predictions
from mubench.training import fit, make_optimizer


def frozen_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).eval().requires_grad_(False)


@register_method("bad-teaching")
class BadTeaching(Unlearner):
    @dataclass(frozen=True)
    class Config:
        temperature: float = 4.0  # KL temperature; DLFD authors' code (Chundawat et al.'s code uses 1)
        retain_fraction: float = 0.3  # share of retain in the unlearning set; Chundawat et al. 2023
        epochs: int = 2  # DLFD authors' MUFAC notebook
        lr: float = 1e-3  # Adam; DLFD authors' MUFAC notebook
        weight_decay: float = 5e-4  # Adam; DLFD authors' MUFAC notebook
        batch_size: int = 0  # 0: the task recipe's

    def teachers(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        """(competent, incompetent): a frozen copy of `model`, and one with every layer re-initialised."""
        competent, incompetent = frozen_copy(model), frozen_copy(model)
        for module in incompetent.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
        return competent, incompetent

    def unlearning_set(self, data: UnlearnData, seed: int) -> Split:
        """All of forget and a seeded retain subset; a sample's label is 1.0 if it is to be forgotten, else 0.0."""
        keep = torch.randperm(len(data.retain), generator=torch.Generator().manual_seed(seed))
        retain = data.retain.subset(keep[:round(self.config.retain_fraction * len(data.retain))].sort().values)
        return Split(torch.cat([data.forget.images, retain.images]),
                     torch.cat([torch.ones(len(data.forget)), torch.zeros(len(retain))]),
                     data.forget.ids + retain.ids)

    def loss(self, student: nn.Module, competent: nn.Module, incompetent: nn.Module, batch,
             kind: TaskKind) -> torch.Tensor:
        x, is_forget = batch
        t = self.config.temperature
        with torch.no_grad():
            flag = is_forget.view(-1, 1)
            target = (flag * soft_predictions(incompetent(x), kind, t)
                      + (1 - flag) * soft_predictions(competent(x), kind, t))
        return distill_kl(student(x), target, kind, t).mean()

    def unlearn(self, model: nn.Module, data: UnlearnData, ctx: UnlearnContext) -> nn.Module:
        cfg = self.config
        competent, incompetent = self.teachers(model)
        batches = BatchLoader(self.unlearning_set(data, ctx.seed), data.preprocess, cfg.batch_size or data.batch_size,
                              shuffle=True, augment=True, seed=ctx.seed, device=data.device)
        optimizer = make_optimizer(model.parameters(), "adam", cfg.lr, weight_decay=cfg.weight_decay)
        fit(model, lambda epoch: batches, lambda m, b: self.loss(m, competent, incompetent, b, data.kind),
            optimizer, cfg.epochs, None, ctx.progress, "bad-teaching")
        return model
