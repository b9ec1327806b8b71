"""Methods that fail in each way a grid must survive: an exception, NaN weights, a NaN loss, a dead worker."""
import os

import torch

from mubench import Unlearner, register_method


@register_method("demo-raises")
class Raises(Unlearner):
    """Raises inside unlearn()."""

    def unlearn(self, model, data, ctx):
        raise RuntimeError("deliberate failure inside unlearn")


@register_method("demo-nan-weights")
class NanWeights(Unlearner):
    """Returns the model with one weight set to NaN, as a diverged optimiser would."""

    def unlearn(self, model, data, ctx):
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] = float("nan")
        return model


@register_method("demo-nan-loss")
class NanLoss(Unlearner):
    """Logs a NaN loss and returns the model unchanged."""

    def unlearn(self, model, data, ctx):
        ctx.log_metric("loss", float("nan"), 0)
        return model


@register_method("demo-kills-worker")
class KillsWorker(Unlearner):
    """Ends its process at once, as a segfault or the OOM killer would (run it only under --executor ray)."""

    def unlearn(self, model, data, ctx):
        os._exit(3)
