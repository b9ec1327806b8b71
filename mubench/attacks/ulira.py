"""U-LiRA: LiRA calibrated on shadows unlearned with the method under test (Hayes, Shumailov, Triantafillou, Khalifa,
Papernot, "Inexact unlearning needs more careful evaluations to avoid a false sense of privacy", 2024). A registered
attack (mubench.attacks.base): `mubench run --attack ulira --shadows K`, which requires plain LiRA
(mubench.attacks.lira) and reports it from the same shadows.

LiRA's IN shadows trained on an example and kept it; the model under test trained on its forget set and then ran an
unlearning method, which can leave a trace LiRA's IN Gaussian does not describe (and a model that lost accuracy
everywhere looks "OUT" to it). U-LiRA therefore unlearns every shadow with the cell's method and configuration: shadow k
(retain ∪ its half of the pool; mubench.attacks.shadows) is handed to the method with retain as retain, its half of the
pool as forget and the task's val as val, exactly as the Original is in the cell. Per pool example, φ under the shadows
that trained on it and then unlearned it is the IN side; φ under the shadows that never trained on it (the plain
shadows: models retrained without it) is the OUT side, as Hayes et al. compare unlearned against retrained models. The
Gaussian fits, the online likelihood-ratio score and the reported AUC and TPR at 1 % and 5 % FPR (forget vs the held-out
non-members) are LiRA's. A perfect unlearner's unlearned shadows are distributed as the retrained ones: AUC ≈ 0.5, TPR ≈
FPR.

Deviation from the paper: Hayes et al. score a population of target models, half unlearned and half retrained, per
target example; a board cell has one unlearned target model, so, like the LiRA columns, U-LiRA scores the cell's model
on its forget examples (members that were unlearned) against its held-out examples (never members).

Cost: one unlearning run per shadow per cell, K times the method's own unlearning time (`ulira_seconds`), plus
caching the K shadows' weights; the Retrain row unlearns a shadow by training that shadow's Retrain on retain alone
(K more trainings per seed, cached). The shadows' forget sets contain held-out examples: that is the evaluator's
game on the evaluator's models; the method still never sees `test` in the cell it is scored for.
"""
from __future__ import annotations

import numpy as np
import torch

from mubench.unlearn.api import METHODS
from mubench.attacks.base import Attack, AttackedCell, Column, register_attack
from mubench.attacks.lira import attack_metrics, cell_phi, fit_gaussians, nonmember_mask, online_scores
from mubench.scores.metrics import time_ratio
from mubench.unlearn.protocol import split_monitor, unlearn_data, unlearn_once
from mubench.attacks.shadows import ShadowSet, attack_pool, confidence_logits, shadow_model


def unlearned_shadow_phi(plan, spec, config, splits, recipe, backbone: str, seed: int,
                         shadows: ShadowSet) -> tuple[np.ndarray, float]:
    """φ on the pool under each shadow after the method unlearned the shadow's half of the pool ([K, pool]), and the
    unlearning seconds summed over the shadows (shadow Retrains' training time included, as a cell charges it)."""
    unlearner = METHODS.get(spec.name)(config)
    pool = attack_pool(splits)
    phis, seconds = [], 0.0
    for index, member in enumerate(shadows.member):
        model = shadow_model(plan, splits, recipe, backbone, seed, index)[0]
        data = unlearn_data(splits, recipe.batch_size, plan.device,
                            forget=pool.subset(torch.from_numpy(np.flatnonzero(member))))

        def retrained(index=index):
            shadow_retrain, record, _ = shadow_model(plan, splits, recipe, backbone, seed, index, retain_only=True)
            return shadow_retrain, record["train_seconds"]
        done = unlearn_once(unlearner, model, data, seed=seed, monitor=split_monitor(splits, data),
                            retrained=retrained)
        seconds += done.seconds
        phis.append(confidence_logits(done.model, pool, splits.kind, splits.preprocess, plan.device))
    return np.array(phis), seconds


def ulira_metrics(target_phi: np.ndarray, unlearned_phi: np.ndarray, shadows: ShadowSet,
                  keep: np.ndarray, examples: dict | None = None) -> dict[str, float]:
    """U-LiRA's AUC and TPRs for a model with φ `target_phi` on the pool: IN from the unlearned shadows that had the
    example, OUT from the plain shadows that never had it; forget vs the kept held-out examples. `examples`, when
    given, receives the per-example scores (`ulira_members`, `ulira_nonmembers`)."""
    calibration = np.where(shadows.member, unlearned_phi, shadows.phi)
    scores = online_scores(target_phi, fit_gaussians(calibration, shadows.member))
    n = shadows.n_forget
    if examples is not None:
        examples.update(ulira_members=scores[:n], ulira_nonmembers=scores[n:][keep])
    return attack_metrics(scores[:n], scores[n:][keep], "ulira")


def ulira_scores(target_phi: np.ndarray, spec, config, plan, splits, recipe, backbone: str, seed: int,
                 shadows: ShadowSet,
                 examples: dict | None = None) -> dict[str, float]:
    """U-LiRA metrics of the cell's model, whose φ on the pool is `target_phi` (mubench.attacks.lira.pool_phi), and their
    cost (`ulira_seconds`: the K unlearning runs; `ulira_runs`: K)."""
    unlearned_phi, seconds = unlearned_shadow_phi(plan, spec, config, splits, recipe, backbone, seed, shadows)
    out = ulira_metrics(target_phi, unlearned_phi, shadows, nonmember_mask(splits), examples)
    out.update(ulira_seconds=seconds, ulira_runs=float(len(shadows.member)))
    return out


@register_attack("ulira")
class ULiRA(Attack):
    """U-LiRA: each shadow unlearned with the cell's method calibrates the IN side; LiRA runs beside it."""
    title = "U-LiRA"
    example_scores = "log likelihood ratio; higher reads \"member\""
    shadows = "models"
    requires = ("lira",)
    columns = (Column("ulira_auc", "U-LiRA AUC"), Column("ulira_tpr1", "U-LiRA TPR@1%FPR"),
               Column("ulira_tpr5", "U-LiRA TPR@5%FPR"), Column("ulira_cost", "U-LiRA cost × retrain", digits=1))

    def score(self, cell: AttackedCell) -> dict[str, float]:
        s = self.seed
        out = ulira_scores(cell_phi(cell, s.splits, s.plan.device), cell.spec, cell.config, s.plan, s.splits,
                           s.recipe, s.backbone, s.seed, s.shadows, cell.examples)
        out["ulira_cost"] = time_ratio(out["ulira_seconds"], s.retrain_seconds)
        return out

    @classmethod
    def note(cls, cells) -> str:
        return ("U-LiRA (--attack ulira, not in NoMUS): LiRA whose IN side comes from the shadows after the row's own "
                "method unlearned each shadow's half of the pool (Hayes et al. 2024), and whose OUT side from the "
                "shadows that never trained on the example; forget vs the MIA's non-members, ± 95 % interval over "
                "seeds. An unlearner whose unlearned models are distributed as retrained ones reads AUC ≈ 0.5 and "
                "TPR ≈ FPR. U-LiRA cost × retrain: the seconds of the row's unlearning runs on the shadows (one per "
                "shadow) over the Retrain's training seconds. ")
