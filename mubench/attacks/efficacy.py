"""SalUn's MIA-efficacy, the membership score of the class-wise protocol (Fan et al., "SalUn", ICLR 2024;
OPTML-Group/Unlearn-Saliency, and the same attack in the class-wise code of SSD, SCRUB and Bad Teaching): an SVC on the
true-class probability, trained on retain images (members) against test images (non-members), applied to the forget
set; the share of forget images it judges non-members.

As the official `main_forget.py` calls it: the members are the first as many retain images as there are
non-members. The non-members are the test images, without the forgotten classes under class-wise forgetting (the
attack must learn seen vs unseen, not which classes the model still predicts). The probabilities are read from the
per-sample losses the cell already computed, p(true class) = exp(−cross-entropy), so single-label tasks only.
"""
from __future__ import annotations

import numpy as np

from mubench.attacks.base import Attack, AttackedCell, AttackUnavailable, Column, register_attack
from mubench.attacks.population import ROLE_LOSSES
from mubench.core.losses import TaskKind
from mubench.scores import metrics

MIN_PER_SIDE = 2  # the SVC needs members and non-members to fit on, and a forget set to judge


def efficacy_losses(cell: AttackedCell, splits, device) -> dict[str, np.ndarray]:
    """Per-sample losses of retain, test and forget: the cell's own where it computed them."""
    losses = cell.memo(ROLE_LOSSES, dict)
    for role in ("retain", "test", "forget"):
        if role not in losses:
            losses[role] = metrics.evaluate(cell.model, splits.role(role), splits.kind, splits.preprocess, device)[0]
    return losses


def efficacy_sets(losses: dict[str, np.ndarray], splits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True-class probabilities of the members, the non-members and the targets."""
    nonmembers = losses["test"]
    if splits.forgotten_classes:
        nonmembers = nonmembers[~metrics.in_classes(splits.test, splits.forgotten_classes)]
    members = losses["retain"][: len(nonmembers)]
    return tuple(np.exp(-np.asarray(part, float)) for part in (members, nonmembers, losses["forget"]))


@register_attack("mia-efficacy")
class MiaEfficacy(Attack):
    """SalUn's MIA-efficacy: the share of the forget set an SVC trained on retain vs test judges unseen."""
    title = "MIA-efficacy"
    columns = (Column("mia_efficacy", "MIA-efficacy"),)

    def score(self, cell: AttackedCell) -> dict[str, float]:
        splits = self.seed.splits
        if splits.kind != TaskKind.MULTICLASS:
            raise AttackUnavailable("MIA-efficacy reads the true-class probability, which a multi-label task has not")
        members, nonmembers, targets = efficacy_sets(efficacy_losses(cell, splits, self.seed.plan.device), splits)
        if min(len(members), len(nonmembers), len(targets)) < MIN_PER_SIDE:
            raise AttackUnavailable(f"MIA-efficacy needs at least {MIN_PER_SIDE} retain, test and forget images; there "
                                    f"are {len(members)}, {len(nonmembers)} and {len(targets)}")
        return {"mia_efficacy": metrics.mia_efficacy(members, nonmembers, targets)}

    @classmethod
    def note(cls, cells) -> str:
        return ("MIA-efficacy (SalUn's): an SVC on the true-class probability trained on retain images (members) "
                "against test images of the remaining classes (non-members), applied to the forget set; the share "
                "of forget images it judges unseen (Retrain's is the value to match). ")
