"""A third-party method shipped as its own distribution, found through the `mubench.methods` entry points."""
from dataclasses import dataclass

from mubench import UnlearnContext, UnlearnData, Unlearner, register_method
from mubench.losses import task_loss
from mubench.training import fit, make_optimizer


@register_method("demo-retain-sgd")
class RetainSGD(Unlearner):
    """One epoch of plain SGD on retain (a plugin example)."""

    @dataclass(frozen=True)
    class Config:
        lr: float = 1e-3  # plugin example default

    def unlearn(self, model, data: UnlearnData, ctx: UnlearnContext):
        batches = data.loader("retain", seed=ctx.seed)
        optimizer = make_optimizer(model.parameters(), "sgd", self.config.lr)
        fit(model, lambda epoch: batches, lambda m, b: task_loss(m(b[0]), b[1], data.kind), optimizer, 1)
        return model


@register_method("demo-returns-none")
class ReturnsNone(Unlearner):
    """A broken plugin: forgets to return the model."""

    def unlearn(self, model, data, ctx):
        return None
