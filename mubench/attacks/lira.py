"""LiRA: a per-example membership attack calibrated by shadow models (Carlini et al., "Membership Inference Attacks
From First Principles", IEEE S&P 2022; github.com/tensorflow/privacy, research/mi_lira_2021), beside the paper's
population MIA (which NoMUS keeps). A registered attack (mubench.attacks.base): `mubench run --attack lira --shadows K`.

For each example of the pool (forget ∪ the held-out role; mubench.attacks.shadows), K shadows trained on retain ∪ a
seeded half of the pool give φ = log(p / (1 − p)) of the true label (eval mode, no augmentation) when the example was IN
a shadow's training set and when it was OUT. Each side is fitted by a Gaussian: a per-example mean, and, with fewer than
`PER_EXAMPLE_VARIANCE_FROM` shadows, one global variance per side (the paper's advice for small K), pooled over the
examples' deviations from their own means (the reference code's np.std over all entries would add the spread of the
means). An example with no IN (or no OUT) shadow takes the mean over examples of that side. The score of a model on an
example is then
  - online: the log likelihood ratio log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out);
  - offline: the one-sided OUT tail, log Φ((φ − μ_out) / σ_out) (how unusually confident for a non-member).
Higher means "member". The attack's members are the forget set and its non-members the held-out role (class-wise
forgetting: the held-out images of the forgotten classes), as `metrics.score_model` reads them; per cell it reports
ROC AUC and TPR at 1 % and 5 % FPR (the highest TPR whose FPR is at most that, no interpolation). A model that never
saw the forget set (Retrain) is at chance: AUC ≈ 0.5, TPR ≈ FPR. U-LiRA (Hayes et al. 2024, mubench.attacks.ulira)
calibrates the IN side on shadows unlearned with the cell's method instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from mubench.attacks.base import Attack, AttackedCell, Column, register_attack
from mubench.scores.metrics import in_classes
from mubench.attacks.shadows import ShadowSet, attack_pool, confidence_logits, held_out_role

PER_EXAMPLE_VARIANCE_FROM = 64  # LiRA fits per-example variances from 64 shadows on; below, one global variance
FPRS = {"tpr1": 0.01, "tpr5": 0.05}  # the low false-positive rates reported
MIN_STD = 1e-6  # floor on a fitted standard deviation (an example whose φ never varies)


@dataclass(frozen=True)
class GaussianFits:
    mean_in: np.ndarray  # [pool]
    mean_out: np.ndarray
    std_in: np.ndarray  # [pool] (all equal under a global variance)
    std_out: np.ndarray


def _side_fit(phi: np.ndarray, mask: np.ndarray, per_example: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-example means (and standard deviations) of φ over the shadows where `mask` holds."""
    counts = mask.sum(axis=0)
    sums = np.where(mask, phi, 0.0).sum(axis=0)
    fallback = phi[mask].mean() if mask.any() else 0.0
    means = np.where(counts > 0, sums / np.maximum(counts, 1), fallback)
    squares = np.where(mask, (phi - means) ** 2, 0.0)
    if per_example:
        std = np.sqrt(squares.sum(axis=0) / np.maximum(counts - 1, 1))
        pooled = np.sqrt(squares.sum() / max(mask.sum() - int((counts > 0).sum()), 1))
        std = np.where(counts > 1, std, pooled)
    else:
        std = np.full(phi.shape[1], np.sqrt(squares.sum() / max(mask.sum() - int((counts > 0).sum()), 1)))
    return means, np.maximum(std, MIN_STD)


def fit_gaussians(phi: np.ndarray, member: np.ndarray, per_example_variance: bool | None = None) -> GaussianFits:
    """IN and OUT Gaussians of φ per example from K shadows (`phi`, `member`: [K, pool]). The variance is global
    (pooled over examples, one per side) unless `per_example_variance`, which defaults to K ≥ 64."""
    phi, member = np.asarray(phi, float), np.asarray(member, bool)
    if per_example_variance is None:
        per_example_variance = phi.shape[0] >= PER_EXAMPLE_VARIANCE_FROM
    mean_in, std_in = _side_fit(phi, member, per_example_variance)
    mean_out, std_out = _side_fit(phi, ~member, per_example_variance)
    return GaussianFits(mean_in, mean_out, std_in, std_out)


def online_scores(phi: np.ndarray, fits: GaussianFits) -> np.ndarray:
    """log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out) per example."""
    return (stats.norm.logpdf(phi, fits.mean_in, fits.std_in)
            - stats.norm.logpdf(phi, fits.mean_out, fits.std_out))


def offline_scores(phi: np.ndarray, fits: GaussianFits) -> np.ndarray:
    """log Φ((φ − μ_out) / σ_out) per example: one-sided, OUT shadows only."""
    return stats.norm.logcdf(phi, fits.mean_out, fits.std_out)


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr: float) -> float:
    """The highest true-positive rate among thresholds whose false-positive rate is at most `fpr`."""
    fprs, tprs, _ = roc_curve(labels, scores)
    return float(tprs[fprs <= fpr].max())


def attack_metrics(member_scores: np.ndarray, nonmember_scores: np.ndarray, prefix: str) -> dict[str, float]:
    """AUC and TPR at the low FPRs of a membership score, members vs non-members (not balanced: the rates do not
    depend on the sizes)."""
    labels = np.concatenate([np.ones(len(member_scores)), np.zeros(len(nonmember_scores))])
    scores = np.concatenate([member_scores, nonmember_scores])
    out = {f"{prefix}_auc": float(roc_auc_score(labels, scores))}
    out.update({f"{prefix}_{name}": tpr_at_fpr(labels, scores, rate) for name, rate in FPRS.items()})
    return out


def nonmember_mask(splits) -> np.ndarray:
    """Which held-out examples are the attack's non-members: all of them, or under class-wise forgetting those of
    the forgotten classes (as metrics.score_model)."""
    held_out = splits.role(held_out_role(splits))
    if splits.forgotten_classes:
        return in_classes(held_out, splits.forgotten_classes)
    return np.ones(len(held_out), bool)


def pool_phi(model, splits, device) -> np.ndarray:
    """φ of `model` on the attack's pool (forget, then the held-out role): what LiRA and U-LiRA score."""
    return confidence_logits(model, attack_pool(splits), splits.kind, splits.preprocess, device)


def lira_scores(model, splits, shadows: ShadowSet, device, examples: dict | None = None) -> dict[str, float]:
    """The cell's LiRA metrics of `model`; see `lira_metrics`."""
    return lira_metrics(pool_phi(model, splits, device), splits, shadows, examples)


def lira_metrics(phi: np.ndarray, splits, shadows: ShadowSet, examples: dict | None = None) -> dict[str, float]:
    """LiRA of a model with φ `phi` on the pool: online (`lira_*`) and offline (`lira_offline_*`) AUC and TPR at 1 %
    and 5 % FPR, forget vs the held-out non-members, and the shadows' cost (training seconds summed, bytes in the
    cache, K). `examples`, when given, receives the per-example online scores (`lira_members`, `lira_nonmembers`)."""
    fits = fit_gaussians(shadows.phi, shadows.member)
    n = shadows.n_forget
    keep = nonmember_mask(splits)
    out = {}
    for prefix, scores in (("lira", online_scores(phi, fits)), ("lira_offline", offline_scores(phi, fits))):
        out.update(attack_metrics(scores[:n], scores[n:][keep], prefix))
        if examples is not None and prefix == "lira":
            examples.update(lira_members=scores[:n], lira_nonmembers=scores[n:][keep])
    out.update(lira_shadows=float(len(shadows.phi)), lira_shadow_seconds=shadows.train_seconds,
               lira_shadow_bytes=float(shadows.disk_bytes))
    return out


def cell_phi(cell: AttackedCell, splits, device) -> np.ndarray:
    """φ of the cell's model on the pool, computed once per cell for every attack that reads it."""
    return cell.memo("pool_phi", lambda: pool_phi(cell.model, splits, device))


@register_attack("lira")
class LiRA(Attack):
    """LiRA against the seed's shadows: online score, forget vs the held-out non-members."""
    title = "LiRA"
    example_scores = "log likelihood ratio; higher reads \"member\""
    shadows = "phi"
    columns = (Column("lira_auc", "LiRA AUC"), Column("lira_tpr1", "LiRA TPR@1%FPR"),
               Column("lira_tpr5", "LiRA TPR@5%FPR"))

    def score(self, cell: AttackedCell) -> dict[str, float]:
        seed = self.seed
        return lira_metrics(cell_phi(cell, seed.splits, seed.plan.device), seed.splits, seed.shadows, cell.examples)

    @classmethod
    def note(cls, cells) -> str:
        """What the LiRA columns are, with the shadows' count and cost as the cells logged them."""
        done = cells[cells["lira_auc"].notna()].drop_duplicates("seed") if "lira_auc" in cells else cells.iloc[:0]
        if done.empty:
            return "LiRA (--attack lira, not in NoMUS): no cell finished with it. "
        counts = ", ".join(sorted({str(int(k)) for k in done["lira_shadows"].dropna()})) or "—"
        ratio = float(np.mean(done["lira_shadow_seconds"] / done["retrain_seconds"]))
        size = float(done["lira_shadow_bytes"].mean()) / 1024
        return (f"LiRA (--attack lira, not in NoMUS): a per-example membership attack calibrated by {counts} shadow "
                f"models per seed (each trained with the task's recipe on retain and a seeded half of forget ∪ the "
                f"held-out set); online likelihood-ratio score, forget (members) vs the MIA's non-members; AUC and "
                f"the TPR at 1 % and 5 % FPR, ± their 95 % interval over seeds. A model that never saw the forget set "
                f"reads AUC ≈ 0.5 and TPR ≈ FPR. Training the shadows took {ratio:.1f}× the Retrain's time per seed; "
                f"the cache keeps {size:.1f} KiB of them per seed. ")
