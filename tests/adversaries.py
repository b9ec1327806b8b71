"""Two adversarial unlearners that game the scores without forgetting, kept here for the board's tests and never
registered: one multiplies the logits by 8 (accuracy and the loss ranking unchanged, the loss's scale not), one
predicts a constant class (no membership signal left, and no utility either)."""
from __future__ import annotations

import torch
from torch import nn

from mubench.unlearn.api import Unlearner


def last_linear(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


class ScaledLogits(Unlearner):
    """The Original with its logits multiplied by 8: the linear head's weights and bias scaled."""
    factor = 8.0

    def unlearn(self, model, data, ctx):
        head = last_linear(model)
        with torch.no_grad():
            head.weight.mul_(self.factor)
            head.bias.mul_(self.factor)
        return model


class ConstantPrediction(Unlearner):
    """Predicts class 0 for every input: the head's weights zeroed, its bias one-hot."""

    def unlearn(self, model, data, ctx):
        head = last_linear(model)
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
            head.bias[0] = 10.0
        return model


ADVERSARIES = {"x8-logits": ScaledLogits, "constant": ConstantPrediction}
