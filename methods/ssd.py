"""Selective Synaptic Dampening (Foster, Schoepf & Brintrup, "Fast Machine Unlearning Without Retraining Through
Selective Synaptic Dampening", AAAI 2024; official code if-loops/selective-synaptic-dampening, `ssd.py`).

No gradient steps. With the model in eval mode, two diagonal Fisher importances per parameter entry:
[]_Df on the forget set and []_D on the full training set D = retain ∪ forget (the method sees both, which
together are that set). Every entry whose forget importance exceeds α times its overall importance
([]_Df > α·[]_D, the selection) is multiplied by β = min(λ·[]_D / []_Df, 1) (the dampening); every other entry is
left exactly as it was. Defaults are the paper's and the official code's for ResNet18 on CIFAR: α = 10, λ = 1.

The paper defines the importance as the expected squared gradient of the log-likelihood; mubench estimates it as
the official `calc_importance` does: the squared gradient of each batch's mean task loss, averaged over batches of
128 (their loaders), the full set unshuffled (retain, then forget). Per-image gradients would be the textbook
empirical Fisher but cost one backward pass per image, which is not what the paper's timings measure. Multi-label
tasks: the log-likelihood is the task's per-attribute BCE.

Ablations vary α, the selection threshold, over the paper's other settings, λ kept at 1: 5 (its ViT full-class
value) and 50 (its PinsFaceRecognition value, there with λ = 0.1, for classes more alike than CIFAR's).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mubench.unlearn.api import UnlearnContext, UnlearnData, Unlearner, register_method
from mubench.core.search import LogUniform
from mubench.data.splits import BatchLoader
from mubench.core.losses import TaskKind, task_loss
from mubench.core.ranges import Positive, Size


def importances(model: nn.Module, batches: BatchLoader, kind: TaskKind) -> dict[str, torch.Tensor]:
    """name -> mean over batches of (∂ batch-mean loss / ∂θ)², the model in eval mode (official calc_importance)."""
    was_training = model.training
    model.eval()
    total = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    count = 0
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        task_loss(model(x), y, kind).backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                total[name] += p.grad.detach().pow(2)
        count += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {name: value / max(1, count) for name, value in total.items()}


@torch.no_grad()
def dampen(model: nn.Module, full: dict[str, torch.Tensor], forget: dict[str, torch.Tensor], alpha: float,
           lam: float) -> int:
    """θ ← β·θ with β = min(λ·full / forget, 1) where forget > α·full; unchanged elsewhere. Returns how many
    entries were selected."""
    count = 0
    for name, p in model.named_parameters():
        selected = forget[name] > alpha * full[name]
        beta = (lam * full[name] / forget[name]).clamp(max=1.0)
        p.copy_(torch.where(selected, p * beta, p))
        count += int(selected.sum())
    return count


@register_method("ssd")
class SSD(Unlearner):
    """Dampen the weights far more important to forget than to the training set (Foster et al. 2024)."""

    @dataclass(frozen=True)
    class Config:
        alpha: Positive = 10.0  # selection: forget importance > α × overall; paper and official code (ResNet18, CIFAR)
        lam: Positive = 1.0  # dampening λ: β = min(λ·overall/forget, 1); paper and official code (ResNet18, CIFAR)
        batch_size: Size = 128  # batches of the importance estimates; official code's loaders
    # mubench tune: selection α and dampening λ, the paper's two
    search_space = {"alpha": LogUniform(1.0, 100.0), "lam": LogUniform(0.1, 10.0)}

    ablations = {"alpha5": {"alpha": 5.0}, "alpha50": {"alpha": 50.0}}  # the paper's other α settings

    def unlearn(self, model: nn.Module, data: UnlearnData, ctx: UnlearnContext) -> nn.Module:
        cfg = self.config
        train = data.retain.concat(data.forget)
        full_batches = BatchLoader(train, data.preprocess, cfg.batch_size, device=data.device)
        forget_batches = data.loader("forget", shuffle=False, batch_size=cfg.batch_size)
        forget = importances(model, ctx.progress(forget_batches, "ssd forget", len(forget_batches)), data.kind)
        full = importances(model, ctx.progress(full_batches, "ssd full", len(full_batches)), data.kind)
        selected = dampen(model, full, forget, cfg.alpha, cfg.lam)
        ctx.log_metric("ssd_dampened_fraction", selected / sum(p.numel() for p in model.parameters()))
        return model.eval()
