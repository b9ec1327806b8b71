"""UNSIR (Tarun et al. 2023; official code vikram2000b/Fast-Machine-Unlearning): error-maximising noise for the
forget labels, then impair and repair.

1. Noise: one input-shaped noise image per forget sample, carrying that sample's label, started from N(0, 1)
   and optimised with Adam to maximise the model's loss while staying small:
   −loss(f(n), y) + λ·mean over the batch of Σ over C, H, W of n².
2. Impair: one epoch on the noise (with the forget labels) mixed into batches of a random retain subset.
3. Repair: one epoch on the same retain subset.

Defaults are the official code's: noise Adam lr 0.1 for 5 × 8 steps, λ = 0.1; a retain subset of 1,000 of
each class's 5,000 images (20 %); impair Adam lr 0.02, repair Adam lr 0.01, no weight decay. Departures:
- The paper unlearns whole classes with one noise batch per class; for a forget set of arbitrary samples
  mubench learns one noise image per forget sample (its label is the sample's), and each impair batch
  carries its share of the noise (all of it once per epoch), where the official code repeats each class's
  noise batch 20 times in the impair set.
- The official code labels every noise image with class 0 (`class_num` is never incremented); the paper's
  noise carries the label of the class it erases, as here.
- The model is in eval mode while the noise is learned (the noise maximises the error of the model as it is
  deployed; the official code leaves it in train mode, so BatchNorm normalises with the noise's own statistics).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mubench.unlearn.api import UnlearnContext, UnlearnData, Unlearner, register_method
from mubench.core.search import LogUniform
from mubench.data.splits import BatchLoader
from mubench.core.losses import TaskKind, task_loss
from mubench.unlearn.method_tools import retain_subset, split_loader
from mubench.train.training import fit, make_optimizer
from mubench.core.ranges import BatchSize, Decay, Epochs, Fraction, Rate, Steps


def noise_loss(logits: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor, l2: float,
               kind: TaskKind) -> torch.Tensor:
    """−loss(logits, labels) + l2 · batch mean of each noise image's Σ over C, H, W of n² (the official code's)."""
    return -task_loss(logits, labels, kind) + l2 * noise.pow(2).flatten(1).sum(1).mean()


class RetainWithNoise:
    """One impair epoch: each retain-subset batch with the next slice of the noise, reshuffled every epoch (all
    noise once per epoch)."""

    def __init__(self, retain: BatchLoader, noise: torch.Tensor, labels: torch.Tensor, seed: int = 0):
        self.retain, self.noise, self.labels = retain, noise, labels
        self.per_batch = -(-len(noise) // max(1, len(retain)))
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.retain)

    def __iter__(self):
        order = torch.randperm(len(self.noise), generator=self.generator).to(self.noise.device)
        for b, (x, y) in enumerate(self.retain):
            part = order[b * self.per_batch:(b + 1) * self.per_batch]
            yield torch.cat([x, self.noise[part]]), torch.cat([y, self.labels[part]])


@register_method("unsir")
class UNSIR(Unlearner):
    @dataclass(frozen=True)
    class Config:
        noise_epochs: Epochs = 5  # rounds of noise optimisation; official code (num_epochs)
        noise_steps: Steps = 8  # Adam steps on the noise per round; official code (num_steps)
        noise_lr: Rate = 0.1  # Adam lr of the noise; official code
        noise_l2: Decay = 0.1  # weight of the batch-mean Σ_CHW n² penalty; official code
        retain_fraction: Fraction = 0.2  # retain subset for impair and repair; official code (1,000 of 5,000 a class)
        impair_epochs: Epochs = 1  # official code
        impair_lr: Rate = 0.02  # Adam; official code
        repair_epochs: Epochs = 1  # passes over the retain subset; official code
        repair_lr: Rate = 0.01  # Adam; official code
        weight_decay: Decay = 0.0  # Adam weight decay in impair and repair; official code uses none
        batch_size: BatchSize = 0  # 0: the task recipe's (official code: 256)
    # mubench tune: the noise's and both phases' learning rates
    search_space = {"noise_lr": LogUniform(1e-2, 1.0), "impair_lr": LogUniform(2e-3, 2e-1),
                    "repair_lr": LogUniform(1e-3, 1e-1)}

    def initial_noise(self, shape: tuple[int, ...], seed: int) -> torch.Tensor:
        return torch.randn(shape, generator=torch.Generator().manual_seed(seed))

    def learn_noise(self, model: nn.Module, noise: torch.Tensor, labels: torch.Tensor, kind: TaskKind) -> torch.Tensor:
        """`noise` after noise_epochs × noise_steps Adam steps on `noise_loss`, the model in eval mode."""
        cfg = self.config
        noise = noise.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([noise], lr=cfg.noise_lr)
        was_training = model.training
        model.eval()
        for _ in range(cfg.noise_epochs * cfg.noise_steps):
            loss = noise_loss(model(noise), labels, noise, cfg.noise_l2, kind)
            optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=[noise])
            optimizer.step()
        model.train(was_training)
        return noise.detach()

    def forget_noise(self, model: nn.Module, data: UnlearnData,
                     ctx: UnlearnContext) -> tuple[torch.Tensor, torch.Tensor]:
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
        noise, noise_labels = self.forget_noise(model, data, ctx)
        subset = split_loader(retain_subset(data, cfg.retain_fraction, ctx.seed), data, cfg.batch_size, ctx.seed)
        step_loss = lambda m, b: task_loss(m(b[0]), b[1], data.kind)  # noqa: E731
        for phase, batches, lr, epochs in (("impair", RetainWithNoise(subset, noise, noise_labels, ctx.seed),
                                            cfg.impair_lr, cfg.impair_epochs),
                                           ("repair", subset, cfg.repair_lr, cfg.repair_epochs)):
            optimizer = make_optimizer(model.parameters(), "adam", lr, weight_decay=cfg.weight_decay)
            fit(model, lambda epoch: batches, step_loss, optimizer, epochs, None, ctx.progress, f"unsir {phase}")
        return model
