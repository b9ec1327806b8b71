"""The one training loop (references and loop-based methods) and the task recipe it follows."""
from __future__ import annotations

import math
import time
from typing import Callable, Iterable

import torch
from torch import nn

from mubench.core import accel
from mubench.data.splits import BatchLoader, Preprocess, Split
from mubench.core.errors import MubenchError
from mubench.core.losses import TaskKind, task_loss
from mubench.data.tasks import Recipe


def make_optimizer(params: Iterable[nn.Parameter], name: str, lr: float, momentum: float = 0.9,
                   weight_decay: float = 5e-4) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise MubenchError(f"unknown optimizer {name!r}; valid optimizers: sgd, adam.")


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int,
                   milestone_steps: tuple[int, ...] = ()) -> torch.optim.lr_scheduler.LRScheduler:
    if schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps))))
    if schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(milestone_steps), gamma=0.1)
    if schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    raise MubenchError(f"unknown schedule {schedule!r}; valid schedules: cosine, step, constant.")


def fit(model: nn.Module, batches: Callable[[int], Iterable], step_loss: Callable[[nn.Module, tuple], torch.Tensor],
        optimizer: torch.optim.Optimizer, epochs: int,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        progress: Callable[[Iterable, str, int | None], Iterable] | None = None, desc: str = "train") -> float:
    """Run `epochs` passes of `batches(epoch)`, one optimiser step per batch in train mode; return the last loss, the
    model left in eval mode. On the fast path (mubench.core.accel: CUDA) each step's forward passes and loss run under bf16
    autocast, the backward pass and the update in float32, the model's conv weights channels-last."""
    last = float("nan")
    device = accel.device_of(model)
    accel.prepare_model(model, device)
    for epoch in range(epochs):
        epoch_batches = batches(epoch)
        total = len(epoch_batches) if hasattr(epoch_batches, "__len__") else None
        if progress is not None:
            epoch_batches = progress(epoch_batches, f"{desc} {epoch + 1}/{epochs}", total)
        for batch in epoch_batches:
            model.train()
            with accel.autocast(device):
                loss = step_loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            last = loss.detach()
    model.eval()
    return float(last)


def train_reference(model: nn.Module, split: Split, kind: TaskKind, preprocess: Preprocess, recipe: Recipe,
                    device: torch.device, seed: int, progress=None, desc: str = "train") -> float:
    """Train `model` on `split` with the task recipe; return the wall-clock seconds it took."""
    torch.manual_seed(seed)
    loader = BatchLoader(split, preprocess, recipe.batch_size, shuffle=True, augment=recipe.augment,
                         seed=seed, device=device)
    optimizer = make_optimizer(model.parameters(), "sgd", recipe.lr, recipe.momentum, recipe.weight_decay)
    scheduler = make_scheduler(optimizer, recipe.schedule, recipe.epochs * len(loader),
                               tuple(m * len(loader) for m in recipe.milestones))
    model.to(device)
    started = time.perf_counter()
    fit(model, lambda epoch: loader, lambda m, b: task_loss(m(b[0]), b[1], kind), optimizer, recipe.epochs,
        scheduler, progress, desc)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started
