"""CF-k (Goel et al. 2022): freeze all but the last k stages, fine-tune those on retain.

"Frozen" means the frozen stages neither learn nor update BatchNorm statistics: they run in eval
mode, so the trunk below the last k stages is exactly the original's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

import torch
from torch import nn

from mubench.api import UnlearnContext, UnlearnData, register_method
from mubench.errors import MubenchError
from mubench.loop import LoopConfig, LoopUnlearner
from mubench.losses import task_loss


def last_stages(model: nn.Module, k: int, method: str) -> list[nn.Module]:
    """The modules of the last `k` stages of `model.stages()` (k counts from the output end, head included)."""
    if not callable(getattr(model, "stages", None)):
        raise MubenchError(f"{method} needs a model with stages() (a mubench Classifier); "
                           f"got a {type(model).__name__}.")
    stages = model.stages()
    if not 1 <= k <= len(stages):
        names = ", ".join(name for name, _ in stages)
        raise MubenchError(f"{method}.k={k} is out of range; this backbone has {len(stages)} stages ({names}), "
                           f"so k must be between 1 and {len(stages)}.")
    return [module for _, modules in stages[-k:] for module in modules]


def open_only(model: nn.Module, modules: list[nn.Module]) -> list[nn.Parameter]:
    """Make only the parameters of `modules` require grad; return them."""
    open_ids = {id(p) for module in modules for p in module.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in open_ids)
    return [p for p in model.parameters() if p.requires_grad]


def train_only(model: nn.Module, modules: list[nn.Module]) -> None:
    """Eval mode everywhere except `modules` (frozen BatchNorm keeps its statistics)."""
    model.eval()
    for module in modules:
        module.train()


@register_method("cf-k")
class CFk(LoopUnlearner):
    @dataclass(frozen=True)
    class Config(LoopConfig):
        k: int = 3  # stages trained, from the output end (ResNet18: layer3, layer4, head); Goel et al. 2022
        epochs: int = 2  # spec/baselines.md (DLFD authors' MUFAC notebook)
        lr: float = 1e-3  # spec/baselines.md (DLFD authors' MUFAC notebook)
        optimizer: Literal["sgd", "adam"] = "sgd"  # spec/baselines.md (DLFD authors' MUFAC notebook)
        momentum: float = 0.9  # spec/baselines.md (DLFD authors' MUFAC notebook)
        weight_decay: float = 5e-4  # as finetune; spec/baselines.md gives none for CF-k
        schedule: Literal["cosine", "constant"] = "constant"  # spec/baselines.md gives no schedule for CF-k
        batch_size: int = 0  # retain batch size; 0: the task recipe's

    def trainable(self, model: nn.Module) -> Iterable[nn.Parameter]:
        return open_only(model, last_stages(model, self.config.k, "cf-k"))

    def batch_loss(self, model: nn.Module, batch, data: UnlearnData, ctx: UnlearnContext) -> torch.Tensor:
        train_only(model, last_stages(model, self.config.k, "cf-k"))
        x, y = batch
        return task_loss(model(x), y, data.kind)

    def unlearn(self, model: nn.Module, data: UnlearnData, ctx: UnlearnContext) -> nn.Module:
        return super().unlearn(model, data, ctx).requires_grad_(True)
