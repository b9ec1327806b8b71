"""Third-party methods and an attack shipped as their own distribution, found through the `mubench.methods` and
`mubench.attacks` entry points."""
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

from mubench import UnlearnContext, UnlearnData, Unlearner, register_method
from mubench.attacks.base import Attack, Column, register_attack
from mubench.attacks.shadows import confidence_logits
from mubench.core.losses import task_loss
from mubench.core.ranges import Rate
from mubench.train.training import fit, make_optimizer


@register_method("demo-retain-sgd")
class RetainSGD(Unlearner):
    """One epoch of plain SGD on retain (a plugin example)."""

    @dataclass(frozen=True)
    class Config:
        lr: Rate = 1e-3  # plugin example default

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


@register_attack("demo-confidence")
class Confidence(Attack):
    """Forget vs test by the model's confidence in the true label, without shadows (a plugin example)."""
    title = "confidence"
    columns = (Column("demo_confidence_auc", "confidence AUC"),)
    example_scores = "log odds of the true label"

    def score(self, cell):
        splits, device = self.seed.splits, self.seed.plan.device
        members, nonmembers = (confidence_logits(cell.model, split, splits.kind, splits.preprocess, device)
                               for split in (splits.forget, splits.test))
        cell.examples.update({"demo-confidence_members": members, "demo-confidence_nonmembers": nonmembers})
        labels = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
        return {"demo_confidence_auc": float(roc_auc_score(labels, np.r_[members, nonmembers]))}

    @classmethod
    def note(cls, cells) -> str:
        return "Confidence AUC (demo plugin): forget vs test by the log odds of the true label. "
