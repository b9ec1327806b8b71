"""SCRUB (Kurmanji et al. 2023): the student (the original, trained on) moves away from the teacher (a
frozen copy of the original) on forget and stays with it on retain.

Each epoch: while `epoch < max_steps`, a max pass over forget (maximise KL(teacher ‖ student));
then a min pass over retain (γ·task loss + α·KL). One SGD optimiser serves both, as in the official code.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from mubench.api import UnlearnContext, UnlearnData, Unlearner, register_method
from mubench.losses import TaskKind, distill_kl, soft_predictions, task_loss
from mubench.training import fit, make_optimizer


@register_method("scrub")
class SCRUB(Unlearner):
    @dataclass(frozen=True)
    class Config:
        epochs: int = 3  # min passes over retain (sgda_epochs); Kurmanji et al. 2023 official code
        max_steps: int = 2  # epochs that start with a max pass over forget (msteps); official code
        lr: float = 5e-4  # SGD (sgda_learning_rate); official code
        momentum: float = 0.9  # official code
        weight_decay: float = 5e-4  # official code
        gamma: float = 0.99  # weight of the task loss in min steps; official code
        alpha: float = 0.001  # weight of the KL in min steps; official code
        temperature: float = 4.0  # distillation temperature (kd_T); official code
        batch_size: int = 0  # retain and forget batch size; 0: the task recipe's

    def teacher(self, model: nn.Module) -> nn.Module:
        return copy.deepcopy(model).eval().requires_grad_(False)

    def kl(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, kind: TaskKind) -> torch.Tensor:
        """Batch-mean KL(teacher ‖ student) at T, times T² (the official DistillKL)."""
        t = self.config.temperature
        return distill_kl(student_logits, soft_predictions(teacher_logits, kind, t), kind, t).mean() * t * t

    def step_loss(self, direction: Literal["max", "min"], student: nn.Module, teacher: nn.Module, batch,
                  kind: TaskKind) -> torch.Tensor:
        x, y = batch
        logits = student(x)
        with torch.no_grad():
            teacher_logits = teacher(x)
        if direction == "max":
            return -self.kl(logits, teacher_logits, kind)
        cfg = self.config
        return cfg.gamma * task_loss(logits, y, kind) + cfg.alpha * self.kl(logits, teacher_logits, kind)

    def phase(self, direction: Literal["max", "min"], student: nn.Module, teacher: nn.Module, batches,
              optimizer: torch.optim.Optimizer, kind: TaskKind, ctx: UnlearnContext) -> float:
        """One pass over `batches` of max steps (forget) or min steps (retain); returns the last step's loss."""
        return fit(student, lambda epoch: batches, lambda m, b: self.step_loss(direction, m, teacher, b, kind),
                   optimizer, 1, None, ctx.progress, f"scrub {direction}")

    def optimizer(self, student: nn.Module) -> torch.optim.Optimizer:
        cfg = self.config
        return make_optimizer(student.parameters(), "sgd", cfg.lr, cfg.momentum, cfg.weight_decay)

    def unlearn(self, model: nn.Module, data: UnlearnData, ctx: UnlearnContext) -> nn.Module:
        cfg = self.config
        teacher, optimizer = self.teacher(model), self.optimizer(model)
        size = cfg.batch_size or None
        forget = data.loader("forget", shuffle=True, augment=True, batch_size=size, seed=ctx.seed)
        retain = data.loader("retain", shuffle=True, augment=True, batch_size=size, seed=ctx.seed)
        for epoch in range(cfg.epochs):
            if epoch < cfg.max_steps:
                ctx.log_metric("scrub_max_loss", self.phase("max", model, teacher, forget, optimizer, data.kind, ctx),
                               epoch)
            ctx.log_metric("scrub_min_loss", self.phase("min", model, teacher, retain, optimizer, data.kind, ctx),
                           epoch)
        return model
