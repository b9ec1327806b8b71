"""UNSIR (Tarun et al. 2023): error-maximising noise for the forget labels, then impair and repair.

1. Noise: one input-shaped noise image per forget sample, carrying that sample's label, optimised to
   maximise the model's loss (kept small by an L2 term).
2. Impair: train on the noise (with the forget labels) mixed into batches of a retain subset.
3. Repair: train on retain.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mubench.api import UnlearnContext, UnlearnData, Unlearner, register_method
from mubench.data import BatchLoader
from mubench.losses import TaskKind, task_loss
from mubench.training import fit, make_optimizer


class RetainWithNoise:
    """One impair epoch: each retain-subset batch with the next slice of the noise (all noise once per epoch)."""

    def __init__(self, retain: BatchLoader, noise: torch.Tensor, labels: torch.Tensor):
        self.retain, self.noise, self.labels = retain, noise, labels
        self.per_batch = -(-len(noise) // max(1, len(retain)))

    def __len__(self) -> int:
        return len(self.retain)

    def __iter__(self):
        for b, (x, y) in enumerate(self.retain):
            part = slice(b * self.per_batch, (b + 1) * self.per_batch)
            yield torch.cat([x, self.noise[part]]), torch.cat([y, self.labels[part]])


@register_method("unsir")
class UNSIR(Unlearner):
    @dataclass(frozen=True)
    class Config:
        noise_steps: int = 8  # Adam steps on each forget batch's noise; DLFD authors' MUFAC notebook
        noise_lr: float = 0.1  # Adam lr of the noise; DLFD authors' MUFAC notebook
        noise_l2: float = 0.1  # weight of mean(noise²) in the noise loss; DLFD authors' MUFAC notebook
        retain_fraction: float = 0.2  # retain subset for impair; Tarun et al. 2023 code (1000 of 5000 per class)
        impair_epochs: int = 1  # DLFD authors' MUFAC notebook
        impair_lr: float = 1e-3  # Adam; DLFD authors' MUFAC notebook
        repair_epochs: int = 2  # passes over all of retain; DLFD authors' MUFAC notebook
        repair_lr: float = 1e-3  # Adam; DLFD authors' MUFAC notebook
        weight_decay: float = 0.0  # Adam weight decay in impair and repair; Tarun et al. 2023 code uses none
        batch_size: int = 0  # 0: the task recipe's

    def initial_noise(self, shape: tuple[int, ...], seed: int) -> torch.Tensor:
        return torch.randn(shape, generator=torch.Generator().manual_seed(seed))

    def learn_noise(self, model: nn.Module, noise: torch.Tensor, labels: torch.Tensor, kind: TaskKind) -> torch.Tensor:
        """`noise` after `noise_steps` Adam steps on −loss(model(noise), labels) + noise_l2·mean(noise²)."""
        cfg = self.config
        noise = noise.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([noise], lr=cfg.noise_lr)
        was_training = model.training
        model.eval()
        for _ in range(cfg.noise_steps):
            loss = -task_loss(model(noise), labels, kind) + cfg.noise_l2 * noise.pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=[noise])
            optimizer.step()
        model.train(was_training)
        return noise.detach()

    def forget_noise(self, model: nn.Module, data: UnlearnData, ctx: UnlearnContext) -> tuple[torch.Tensor, torch.Tensor]:
        """Learned noise for every forget sample, and the forget labels it carries."""
        noises, labels = [], []
        forget = data.loader("forget", shuffle=False, batch_size=self.config.batch_size or None)
        for b, (x, y) in enumerate(ctx.progress(forget, "unsir noise", len(forget))):
            start = self.initial_noise(tuple(x.shape), ctx.seed * 100_003 + b).to(x.device)
            noises.append(self.learn_noise(model, start, y, data.kind))
            labels.append(y)
        return torch.cat(noises), torch.cat(labels)

    def unlearn(self, model: nn.Module, data: UnlearnData, ctx: UnlearnContext) -> nn.Module:
        cfg = self.config
        size = cfg.batch_size or None
        noise, noise_labels = self.forget_noise(model, data, ctx)

        keep = torch.randperm(len(data.retain), generator=torch.Generator().manual_seed(ctx.seed))
        subset = data.retain.subset(keep[:max(1, round(cfg.retain_fraction * len(data.retain)))].sort().values)
        subset_loader = BatchLoader(subset, data.preprocess, size or data.batch_size, shuffle=True, augment=True,
                                    seed=ctx.seed, device=data.device)
        impair = RetainWithNoise(subset_loader, noise, noise_labels)
        optimizer = make_optimizer(model.parameters(), "adam", cfg.impair_lr, weight_decay=cfg.weight_decay)
        fit(model, lambda epoch: impair, lambda m, b: task_loss(m(b[0]), b[1], data.kind), optimizer,
            cfg.impair_epochs, None, ctx.progress, "unsir impair")

        retain = data.loader("retain", shuffle=True, augment=True, batch_size=size, seed=ctx.seed)
        optimizer = make_optimizer(model.parameters(), "adam", cfg.repair_lr, weight_decay=cfg.weight_decay)
        fit(model, lambda epoch: retain, lambda m, b: task_loss(m(b[0]), b[1], data.kind), optimizer,
            cfg.repair_epochs, None, ctx.progress, "unsir repair")
        return model
