"""CF-k (Goel et al. 2022): freeze all but the last k stages, fine-tune those on retain.

"Frozen" means the frozen stages neither learn nor update BatchNorm statistics: they run in eval
mode, so the trunk below the last k stages is exactly the original's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from mubench.api import register_method
from mubench.errors import MubenchError
from mubench.loop import LoopConfig, LoopUnlearner


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

    def trained_modules(self, model: nn.Module) -> list[nn.Module]:
        return last_stages(model, self.config.k, "cf-k")
