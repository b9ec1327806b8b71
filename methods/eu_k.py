"""EU-k (Goel et al. 2022): re-initialise the last k stages and train them from scratch on retain.

Unlike the DLFD authors' code (which fine-tunes without re-initialising, i.e. CF-k), the last k
stages start from fresh weights; the stages below stay frozen, in eval mode, exactly the original's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from mubench.api import UnlearnContext, UnlearnData, register_method
from mubench.loop import LoopConfig, LoopUnlearner
from mubench.methods.cf_k import last_stages


@register_method("eu-k")
class EUk(LoopUnlearner):
    @dataclass(frozen=True)
    class Config(LoopConfig):
        k: int = 3  # stages re-initialised and trained, from the output end; Goel et al. 2022
        epochs: int = 2  # spec/baselines.md ("2+"); Goel et al. train them with the full recipe
        lr: float = 1e-2  # spec/baselines.md: 10x CF-k's 1e-3, since the stages start fresh
        optimizer: Literal["sgd", "adam"] = "sgd"  # as CF-k (spec/baselines.md)
        momentum: float = 0.9  # as CF-k (spec/baselines.md)
        weight_decay: float = 5e-4  # as finetune (spec/baselines.md)
        schedule: Literal["cosine", "constant"] = "cosine"  # annealing suits training from scratch; our choice
        batch_size: int = 0  # retain batch size; 0: the task recipe's

    def reset_last_stages(self, model: nn.Module) -> list[nn.Module]:
        """Re-initialise the last k stages in place (every submodule with `reset_parameters`); return them."""
        stages = last_stages(model, self.config.k, "eu-k")
        for stage in stages:
            for module in stage.modules():
                if callable(getattr(module, "reset_parameters", None)):
                    module.reset_parameters()
        return stages

    def trained_modules(self, model: nn.Module) -> list[nn.Module]:
        return last_stages(model, self.config.k, "eu-k")

    def prepare(self, model: nn.Module, data: UnlearnData, ctx: UnlearnContext) -> None:
        self.reset_last_stages(model)
