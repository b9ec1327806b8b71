"""The two reference rows of every leaderboard: what not unlearning and exact unlearning score."""
from __future__ import annotations

from torch import nn

from mubench.unlearn.api import UnlearnContext, UnlearnData, Unlearner, register_method


@register_method("original")
class Original(Unlearner):
    """The original model (trained on retain ∪ forget), unchanged: the no-unlearning bound."""

    def unlearn(self, model: nn.Module, data: UnlearnData, ctx: UnlearnContext) -> nn.Module:
        return model


@register_method("retrain")
class Retrain(Unlearner):
    """The cached model trained from scratch on retain only (the gold standard); its training time counts."""

    def unlearn(self, model: nn.Module, data: UnlearnData, ctx: UnlearnContext) -> nn.Module:
        return ctx.retrained_model()
