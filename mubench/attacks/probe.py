"""Representation probes: what the unlearned model's penultimate features (`Classifier.features`) still hold.

- `probe_auc`, `probe_fs`: a linear membership probe. Logistic regression on standardised features, forget images
  (members) against test images (non-members), balanced by a seeded subsample of the larger side, its mean held-out
  ROC AUC over a seeded stratified k-fold (k = 5, fewer when a side is smaller); FS = 2·|AUC − 0.5|, the paper's
  scale. `probe_floor`: the FS that 95 % of `PERMUTATIONS` label permutations of the same features stay under (no
  membership, the same features, fits and folds): a probe FS under it cannot be told from no signal. With more
  feature dimensions than images a cross-validated probe reads far from 0.5 on pure noise (FS 0.2–0.3 at 100 images
  of 64 dimensions), so a fixed threshold would not do. Under class-wise forgetting the non-members are the test images of the forgotten classes, as the paper's
  MIA takes them (mubench.scores.metrics.population_members): against the other classes the probe would read the
  class, not membership, and score about 1 on Retrain too.
- `probe_acc`: a linear probe's task accuracy. Multinomial logistic regression fitted on the features of up to
  `RETAIN_CAP` seeded retain images, scored on the test images (of the remaining classes under class-wise
  forgetting, as test accuracy is); multi-label tasks fit one per attribute and report the mean accuracy.
- `probe_cka_forget`, `probe_cka_test`: linear CKA (Kornblith et al., ICML 2019) between the model's features and the
  seed's Retrain model's, on forget and on the test images `probe_acc` reads. Without a Retrain model in the seed
  context (a caller that passes none; the harness always does) these two are left out and the board shows "—".

Features come from the model in eval mode without gradients; every submodule's train/eval flag is restored after.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from mubench.attacks.base import Attack, AttackedCell, AttackUnavailable, Column, register_attack
from mubench.core.losses import TaskKind
from mubench.scores.metrics import penultimate
from mubench.scores import metrics

FOLDS = 5
PERMUTATIONS = 100  # of the membership labels, for the probe's no-signal FS
MIN_PER_SIDE = 2  # a stratified fold needs one member and one non-member on each side of the cut
RETAIN_CAP = 2000  # retain images the task probe fits on


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two feature matrices over the same n examples (n × d₁, n × d₂): 1 for the same representation
    up to rotation and isotropic scale, about 0 for unrelated ones; 0 where either side has no variance."""
    x = np.asarray(x, np.float64) - np.mean(x, axis=0)
    y = np.asarray(y, np.float64) - np.mean(y, axis=0)
    norms = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(np.linalg.norm(y.T @ x) ** 2 / norms) if norms > 0 else 0.0


def membership_auc(members: np.ndarray, nonmembers: np.ndarray, seed: int) -> float:
    """Mean held-out AUC of a standardised logistic regression telling members from non-members, balanced."""
    x, labels = _membership_set(members, nonmembers, seed)
    return _cross_validated_auc(x, labels, seed)


def membership_floor(members: np.ndarray, nonmembers: np.ndarray, seed: int, permutations: int = PERMUTATIONS,
                     quantile: float = 0.95) -> float:
    """The probe FS that `quantile` of `permutations` seeded shuffles of the membership labels stay under: what the
    probe reads on these very features when membership carries no signal."""
    x, labels = _membership_set(members, nonmembers, seed)
    rng = np.random.default_rng(seed)
    scores = [metrics.forgetting_score(_cross_validated_auc(x, rng.permutation(labels), seed))
              for _ in range(permutations)]
    return float(np.quantile(scores, quantile))


def _membership_set(members: np.ndarray, nonmembers: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    members, nonmembers = metrics.balance(members, nonmembers, seed)
    if len(members) < MIN_PER_SIDE:
        raise AttackUnavailable(f"the membership probe needs at least {MIN_PER_SIDE} forget and {MIN_PER_SIDE} "
                                f"held-out images; after balancing there are {len(members)} of each")
    return np.concatenate([members, nonmembers]), np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]


def _cross_validated_auc(x: np.ndarray, labels: np.ndarray, seed: int) -> float:
    folds = StratifiedKFold(min(FOLDS, int(labels.sum())), shuffle=True, random_state=seed)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return float(cross_val_score(probe, x, labels, cv=folds, scoring="roc_auc").mean())


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                   kind: TaskKind = TaskKind.MULTICLASS) -> float:
    """Test accuracy of a standardised logistic regression fitted on (train_x, train_y); multi-label: one per
    attribute (an attribute constant on train is predicted as that constant), accuracies averaged."""
    if kind != TaskKind.MULTILABEL:
        return _fit_and_score(train_x, train_y, test_x, test_y)
    return float(np.mean([_fit_and_score(train_x, train_y[:, a], test_x, test_y[:, a])
                          for a in range(train_y.shape[1])]))


def _fit_and_score(train_x, train_y, test_x, test_y) -> float:
    if len(np.unique(train_y)) < 2:
        return float(np.mean(test_y == train_y[0]))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(train_x, train_y)
    return float(probe.score(test_x, test_y))


@contextlib.contextmanager
def modes_kept(model: nn.Module):
    """Restore every submodule's train/eval flag on exit (penultimate switches the model to eval)."""
    modes = [(module, module.training) for module in model.modules()]
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


@register_attack("probe")
class Probe(Attack):
    """Linear probes on the penultimate features: membership AUC, task accuracy, CKA to Retrain."""
    title = "representation probes"
    columns = (Column("probe_auc", "probe AUC"), Column("probe_fs", "probe FS"),
               Column("probe_floor", "probe no-signal FS"), Column("probe_acc", "probe acc"),
               Column("probe_cka_forget", "CKA forget"), Column("probe_cka_test", "CKA test"))

    def __init__(self, seed):
        super().__init__(seed)
        splits = seed.splits
        order = np.random.default_rng(seed.seed).permutation(len(splits.retain))[:RETAIN_CAP]
        self._sets = {"forget": splits.forget, "test": splits.test,  # the images the probes read, every cell
                      "retain": splits.retain.subset(torch.from_numpy(np.sort(order)))}
        self._retrain_features = None  # Retrain's, the same for every cell of the seed

    def _features(self, model: nn.Module, sets) -> dict[str, np.ndarray]:
        splits, device = self.seed.splits, self.seed.plan.device
        with modes_kept(model):
            return {role: penultimate(model, split, splits, device) for role, split in sets.items()}

    def score(self, cell: AttackedCell) -> dict[str, float]:
        splits = self.seed.splits
        sets = self._sets
        features = self._features(cell.model, sets)
        forgotten = metrics.in_classes(splits.test, splits.forgotten_classes)  # all False unless class-wise
        nonmembers = features["test"][forgotten] if splits.forgotten_classes else features["test"]
        auc = membership_auc(features["forget"], nonmembers, self.seed.seed)
        floor = membership_floor(features["forget"], nonmembers, self.seed.seed)
        test_features, test_labels = features["test"][~forgotten], splits.test.labels.numpy()[~forgotten]
        scores = {"probe_auc": auc, "probe_fs": metrics.forgetting_score(auc), "probe_floor": floor,
                  "probe_acc": probe_accuracy(features["retain"], sets["retain"].labels.numpy(), test_features,
                                              test_labels, splits.kind)}
        if self.seed.retrained is None:
            return scores
        if self._retrain_features is None:
            self._retrain_features = self._features(self.seed.retrained, {r: sets[r] for r in ("forget", "test")})
        scores["probe_cka_forget"] = linear_cka(features["forget"], self._retrain_features["forget"])
        scores["probe_cka_test"] = linear_cka(test_features, self._retrain_features["test"][~forgotten])
        return scores

    @classmethod
    def note(cls, cells) -> str:
        return ("Representation probes on the penultimate features. Probe AUC: a standardised logistic regression's "
                "held-out AUC telling forget (members) from test images (non-members; under class-wise forgetting "
                "those of the forgotten classes), balanced, 5-fold; probe FS = 2·|AUC − 0.5|, the paper's scale (0: "
                "no membership readable; Retrain's is the value to match). Probe no-signal FS: per cell, the probe FS "
                f"that 95 % of {PERMUTATIONS} shuffles of the membership labels on the same features stay under; a "
                f"probe FS below it cannot be told from no signal. {cls.resolution(cells)}Probe acc: a logistic "
                "regression fitted on "
                "retain features, scored on test (the remaining classes under class-wise forgetting): the "
                "representation's utility, higher is better. CKA forget, CKA test: linear CKA between the model's "
                "features and Retrain's on forget and on test (1: the same representation up to rotation and scale; "
                "Retrain's row is 1). ")

    @staticmethod
    def resolution(cells) -> str:
        """How many finished cells, and how many of the Original's, read a probe FS above their no-signal FS."""
        if not {"probe_fs", "probe_floor"} <= set(cells.columns):
            return ""
        done = cells[(cells["status"] == "FINISHED")].dropna(subset=["probe_fs", "probe_floor"])
        above = done["probe_fs"] > done["probe_floor"]
        original = above[done["label"] == "original"]
        return (f"On this board {int(above.sum())} of {len(done)} cells read a probe FS above their no-signal FS "
                f"(the Original: {int(original.sum())} of {len(original)} seeds)"
                + (": the membership probe does not see the forget set in these features, so probe FS differences "
                   "between rows are noise. " if not original.any() else ". "))
