"""The population attacks every cell is scored by, whatever `--attack` names: the paper's MIA, whose forgetting score
is in NoMUS, and the scale-free loss attacks beside it. Both read the per-sample losses of the forget set (members)
and of the held-out role (non-members: the task's unseen role where it has one, else test; class-wise forgetting: the
held-out images of the forgotten classes), balanced by a seeded shuffle (mubench.scores.metrics.mia_scores).

The paper's MIA is the MUFAC/DLFD notebooks' attack: `LogisticRegression()` on the raw loss, accuracy over a 10-fold
stratified shuffle split, FS = 2·|MIA − 0.5|. Its L2 penalty makes it depend on the loss scale, so beside it: the same
regression on the standardised log-loss, and the ROC AUC of the loss as a membership score (neither in NoMUS).
"""
from __future__ import annotations

import numpy as np

from mubench.attacks.base import Attack, AttackedCell, AttackUnavailable, Column, register_attack
from mubench.scores import metrics

ROLE_LOSSES = "role_losses"  # memo: per-sample losses of every role, which the cell computed while scoring accuracy


def role_losses(cell: AttackedCell, splits, device) -> dict[str, np.ndarray]:
    """The model's per-sample losses per role: the cell's own when it computed them, else computed here."""
    return cell.memo(ROLE_LOSSES, lambda: {
        role: metrics.evaluate(cell.model, splits.role(role), splits.kind, splits.preprocess, device)[0]
        for role in ("forget", metrics.held_out_role(splits))})


def population_attack(cell: AttackedCell, splits, device) -> metrics.MiaResult:
    """Both attacks' result, computed once per cell; AttackUnavailable when the sizes leave them undefined."""
    reason = population_unavailable(splits)
    if reason:
        raise AttackUnavailable(reason)
    return cell.memo("population_attack", lambda: metrics.mia_scores(
        *metrics.population_members(role_losses(cell, splits, device), splits)))


def population_unavailable(splits) -> str | None:
    """Why the population attacks cannot be computed on these splits (too few members or non-members), or None;
    known before any model is trained, since the sizes are the splits'."""
    held_out = splits.role(metrics.held_out_role(splits))
    non_members = len(held_out)
    if splits.forgotten_classes:
        non_members = int(metrics.in_classes(held_out, splits.forgotten_classes).sum())
    return metrics.mia_unavailable(len(splits.forget), non_members)


@register_attack("mia")
class PaperMIA(Attack):
    """The paper's MIA on forget vs held-out losses; its FS = 2·|MIA − 0.5| is in NoMUS."""
    title = "paper MIA"
    columns = (Column("mia", "MIA"), Column("fs", "FS"))

    def score(self, cell: AttackedCell) -> dict[str, float]:
        result = population_attack(cell, self.seed.splits, self.seed.plan.device)
        return {"mia": result.mia, "fs": metrics.forgetting_score(result.mia), "mia_members": result.n_members,
                "mia_nonmembers": result.n_nonmembers}

    @classmethod
    def note(cls, cells) -> str:
        return ("FS is the forgetting score 2·(MIA − 0.5) in absolute value, the paper's scale (the MUFAC notebooks "
                "print half of it). MIA: logistic regression on per-sample losses, forget (members) vs test "
                "(non-members; the task's separate unseen set where it has one), balanced by a seeded shuffle, 10-fold "
                "stratified shuffle split. ")


@register_attack("scale-free")
class ScaleFree(Attack):
    """The same members and non-members by standardised log-loss and by loss AUC: blind to the loss's scale."""
    title = "scale-free loss attacks"
    columns = (Column("mia_logloss", "MIA log-loss"), Column("mia_auc", "MIA AUC"))

    def score(self, cell: AttackedCell) -> dict[str, float]:
        result = population_attack(cell, self.seed.splits, self.seed.plan.device)
        return {"mia_logloss": result.mia_logloss, "mia_auc": result.mia_auc}

    @classmethod
    def note(cls, cells) -> str:
        return "MIA log-loss and MIA AUC are scale-free attacks beside it (not in NoMUS). "
