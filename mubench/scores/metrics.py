"""Scores of an unlearned model, as the MUFAC/MUCAC benchmark (Choi & Na, "Towards Machine Unlearning Benchmarks",
its public notebooks, github.com/ndb796/MachineUnlearning) and the DLFD paper (Choi & Na, AAAI 2025) define them:
per-sample losses in eval mode; MIA = logistic regression on the loss, forget (members) vs held-out non-members,
balanced by a seeded shuffle, 10-fold stratified shuffle split; FS = 2·|MIA − 0.5|; NoMUS = ½·(acc + 1 − FS)."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from torch import nn

from mubench.core import accel
from mubench.data.splits import BatchLoader, Preprocess, Split
from mubench.core.losses import TaskKind, correct, task_loss


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, kind: TaskKind, preprocess: Preprocess, device: torch.device,
             batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample losses and per-sample correctness (multi-label: the share of attributes right), model in eval
    mode; the forward pass under bf16 autocast on the fast path (mubench.core.accel), the loss in float32."""
    model.eval()
    losses, right = [], []
    for x, y in BatchLoader(split, preprocess, batch_size, device=device):
        with accel.autocast(device):
            logits = model(x)
        logits = logits.float()
        losses.append(task_loss(logits, y, kind, reduction="none").float().cpu())
        right.append(correct(logits, y, kind).float().cpu())
    if not losses:
        return np.zeros(0), np.zeros(0)
    return torch.cat(losses).numpy(), torch.cat(right).numpy()


@torch.no_grad()
def penultimate(model: nn.Module, subset: Split, splits, device: torch.device) -> np.ndarray:
    """The input of the model's last Linear layer (`features(x)`) on `subset`, model in eval mode."""
    if not callable(getattr(model, "features", None)):
        raise TypeError(f"{type(model).__name__} has no features(x) method, so its penultimate features are unknown")
    model.eval()
    batches = [model.features(x).flatten(1).float().cpu() for x, _ in BatchLoader(subset, splits.preprocess, 256,
                                                                                   device=device)]
    return torch.cat(batches).numpy()


def losses_and_accuracy(model: nn.Module, split: Split, kind: TaskKind, preprocess: Preprocess,
                        device: torch.device, batch_size: int = 256) -> tuple[np.ndarray, float]:
    """Per-sample losses (model in eval mode) and accuracy on `split`."""
    losses, right = evaluate(model, split, kind, preprocess, device, batch_size)
    return losses, mean_or_nan(right)


def mean_or_nan(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def in_classes(split: Split, classes: tuple[int, ...]) -> np.ndarray:
    """Which samples of `split` carry one of `classes` (single-label tasks)."""
    return np.isin(split.labels.numpy(), classes)


@dataclass(frozen=True)
class MiaResult:
    mia: float  # the paper's attack: LogisticRegression() on the raw loss
    mia_logloss: float  # the same attack on standardised log-loss (scale-free)
    mia_auc: float  # ROC AUC of -loss as a membership score
    n_members: int
    n_nonmembers: int


def balance(member_losses: np.ndarray, nonmember_losses: np.ndarray, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle the larger set with `seed` and keep as many as the smaller set has."""
    rng = np.random.RandomState(seed)
    if len(member_losses) >= len(nonmember_losses):
        member_losses = member_losses[rng.permutation(len(member_losses))][: len(nonmember_losses)]
    else:
        nonmember_losses = nonmember_losses[rng.permutation(len(nonmember_losses))][: len(member_losses)]
    return member_losses, nonmember_losses


MIA_SPLITS, MIA_HELD_OUT = 10, 0.1  # the notebooks' StratifiedShuffleSplit: 10 splits, 10 % held out of each
MIA_MIN_PER_SIDE = 6  # the fewest members (and non-members) after balancing for which that split is defined


def mia_unavailable(n_members: int, n_nonmembers: int) -> str | None:
    """Why the paper's MIA (and the scale-free attacks on the same sets) cannot be computed on this many members and
    non-members, or None when it can: balanced to the smaller side, each split must hold out at least one of each
    and keep at least one of each to fit on (10 % of 2 × 5 rounds up to one image)."""
    if min(n_members, n_nonmembers) >= MIA_MIN_PER_SIDE:
        return None
    return (f"the population MIA needs at least {MIA_MIN_PER_SIDE} members and {MIA_MIN_PER_SIDE} non-members (its "
            f"{MIA_SPLITS} stratified splits each hold out {MIA_HELD_OUT:.0%} of the balanced set, at least one of "
            f"each); there are {n_members} forget and {n_nonmembers} held-out images")


def mia_scores(member_losses: np.ndarray, nonmember_losses: np.ndarray) -> MiaResult:
    members, nonmembers = balance(np.asarray(member_losses, float), np.asarray(nonmember_losses, float))
    losses = np.concatenate([members, nonmembers])
    labels = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    splitter = StratifiedShuffleSplit(n_splits=MIA_SPLITS, test_size=MIA_HELD_OUT, random_state=0)
    raw = paper_attack_accuracy(losses, labels, splitter)
    log_feature = np.log(losses + 1e-12).reshape(-1, 1)
    logloss = split_accuracies(lambda: make_pipeline(StandardScaler(), LogisticRegression()), log_feature, labels,
                               splitter)
    auc = roc_auc_score(labels, -losses)
    return MiaResult(float(raw.mean()), float(logloss.mean()), float(auc), len(members), len(nonmembers))


def paper_attack_accuracy(losses: np.ndarray, labels: np.ndarray, splitter) -> np.ndarray:
    """The MUFAC/DLFD notebooks' attack: a default LogisticRegression() on the raw loss, accuracy per split."""
    return split_accuracies(LogisticRegression, losses.reshape(-1, 1), labels, splitter)


def split_accuracies(make_attack, features: np.ndarray, labels: np.ndarray, splitter) -> np.ndarray:
    """A fresh `make_attack()` fitted on each split's train part, its accuracy on the held-out part: what
    `cross_val_score(..., scoring="accuracy")` computes, without its per-fit dispatch (half the time of the no-signal
    floor's 1,000 fits)."""
    return np.array([np.mean(make_attack().fit(features[train], labels[train]).predict(features[held]) == labels[held])
                     for train, held in splitter.split(features, labels)])


def mia_efficacy(member_confidence: np.ndarray, nonmember_confidence: np.ndarray,
                 target_confidence: np.ndarray) -> float:
    """SalUn's MIA-efficacy (Fan et al., ICLR 2024, Appendix C.3; OPTML-Group/Unlearn-Saliency,
    `evaluation/SVC_MIA.py`, its "confidence" entry as `main_forget.py` calls it): an `SVC(C=3, gamma="auto")` on the
    true-class probability, fitted on members (label 1) against non-members (label 0), then applied to the targets
    (the forget set); the share of targets it judges non-members. 1: the forget set looks unseen; Retrain's value is
    the one to match."""
    x = np.concatenate([member_confidence, nonmember_confidence]).reshape(-1, 1)
    y = np.concatenate([np.ones(len(member_confidence)), np.zeros(len(nonmember_confidence))])
    attack = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
    return float(1.0 - attack.predict(np.asarray(target_confidence, float).reshape(-1, 1)).mean())


NO_SIGNAL_DRAWS = 100


@functools.lru_cache(maxsize=None)
def no_signal_fs(n_members: int, n_nonmembers: int, draws: int = NO_SIGNAL_DRAWS, quantile: float = 0.95) -> float:
    """The paper's FS that `quantile` of draws stay under when members and non-members come from one loss
    distribution (no signal), at these sizes: an FS under it cannot be told from no signal. Estimated from `draws`
    seeded draws of unit-exponential losses. With no signal the attack is at chance at any loss scale, but its spread
    is not: at losses near 1e-4 its penalised fit predicts one class and FS reads 0, so this is the noise floor of a
    model whose losses sit near 1."""
    rng = np.random.default_rng(0)
    n = min(n_members, n_nonmembers)
    labels = np.r_[np.ones(n), np.zeros(n)]
    splitter = StratifiedShuffleSplit(n_splits=MIA_SPLITS, test_size=MIA_HELD_OUT, random_state=0)
    scores = [forgetting_score(float(paper_attack_accuracy(rng.exponential(size=2 * n), labels, splitter).mean()))
              for _ in range(draws)]
    return float(np.quantile(scores, quantile))


def forgetting_score(mia: float) -> float:
    """FS = 2|MIA - 0.5| (the paper's scale; the MUFAC notebooks print half of it)."""
    return 2.0 * abs(mia - 0.5)


def nomus(accuracy: float, fs: float) -> float:
    return 0.5 * (accuracy + (1.0 - fs))


def time_ratio(unlearn_seconds: float, retrain_seconds: float) -> float:
    return unlearn_seconds / retrain_seconds if retrain_seconds > 0 else math.nan


def score_model(model: nn.Module, splits, device: torch.device,
                losses: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Accuracy and mean loss per role of a cell's model (the population attacks, mubench.attacks.population, and
    NoMUS come after it).

    Class-wise forgetting (`splits.forgotten_classes`): utility is test accuracy on the remaining classes and
    `forgotten_test_acc` test accuracy on those classes (Retrain's is about 0). `chance_acc` is what a constant
    prediction scores on the same test images and `test_count` their number (the board marks a row at chance).
    `losses`, when given, is filled with the per-sample losses of each role (the attacks and the plots reuse them).
    """
    out: dict[str, float] = {}
    losses = {} if losses is None else losses
    right = {}
    for role in splits.roles():
        losses[role], right[role] = evaluate(model, splits.role(role), splits.kind, splits.preprocess, device)
        out[f"{role}_acc"], out[f"{role}_loss"] = mean_or_nan(right[role]), mean_or_nan(losses[role])
    if splits.forgotten_classes:
        forgotten = in_classes(splits.test, splits.forgotten_classes)
        out["test_acc"] = mean_or_nan(right["test"][~forgotten])
        out["forgotten_test_acc"] = mean_or_nan(right["test"][forgotten])
    labels = splits.test.labels
    if splits.forgotten_classes:
        labels = labels[torch.from_numpy(~in_classes(splits.test, splits.forgotten_classes))]
    out["chance_acc"], out["test_count"] = chance_accuracy(labels, splits.kind), float(len(labels))
    return out


def chance_accuracy(labels: torch.Tensor, kind: TaskKind) -> float:
    """The best accuracy a constant prediction reaches on these labels: the majority class's share (multi-label:
    per attribute, the larger of its two shares, averaged)."""
    if len(labels) == 0:
        return math.nan
    if kind == TaskKind.MULTICLASS:
        return float(torch.bincount(labels).max()) / len(labels)
    share = labels.float().mean(0)
    return float(torch.maximum(share, 1 - share).mean())


def at_chance(test_acc: float, chance_acc: float, test_count: float) -> bool:
    """Whether a test accuracy is within noise of chance: no more than one-sided 95 % binomial noise above what a
    constant prediction scores on the same number of test images."""
    if any(math.isnan(v) for v in (test_acc, chance_acc, test_count)) or test_count < 1:
        return False
    return test_acc <= chance_acc + 1.645 * math.sqrt(chance_acc * (1 - chance_acc) / test_count)


def held_out_role(splits) -> str:
    """The population MIA's non-member role: the task's unseen role where it has one, else test."""
    return "unseen" if splits.unseen is not None else "test"


def population_members(losses: dict[str, np.ndarray], splits) -> tuple[np.ndarray, np.ndarray]:
    """Member (forget) and non-member losses of the population MIA, from per-sample losses per role: the held-out
    role's, restricted under class-wise forgetting to its images of the forgotten classes."""
    held_out = held_out_role(splits)
    non_members = losses[held_out]
    if splits.forgotten_classes:
        non_members = non_members[in_classes(splits.role(held_out), splits.forgotten_classes)]
    return losses["forget"], non_members
