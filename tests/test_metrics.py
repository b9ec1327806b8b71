import math
import statistics

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit
from torch import nn

from mubench.data.splits import Preprocess, Split, Splits
from mubench.harness.plan import MethodSpec, RunPlan, SeedSetup
from mubench.kits.method_kit import TOY_RECIPE
from mubench.run.cell import cell_scores
from mubench.boards.leaderboard import mean_ci
from mubench.core.losses import TaskKind, correct, task_loss
from mubench.scores.metrics import (balance, forgetting_score, in_classes, losses_and_accuracy, mean_or_nan, mia_scores,
                             nomus, time_ratio)


def test_identical_distributions_give_chance_mia():
    rng = np.random.default_rng(0)
    members, nonmembers = rng.exponential(0.5, 300), rng.exponential(0.5, 300)
    result = mia_scores(members, nonmembers)
    assert abs(result.mia - 0.5) < 0.05
    assert forgetting_score(result.mia) <= 0.1


def test_perfectly_separated_losses():
    result = mia_scores(np.zeros(100), np.full(100, 5.0))
    assert result.mia == 1.0
    assert forgetting_score(result.mia) == 1.0
    assert result.mia_auc == 1.0


def test_fs_and_nomus_known_answer():
    assert forgetting_score(0.55) == pytest.approx(0.1)
    assert nomus(0.6, forgetting_score(0.55)) == pytest.approx(0.75)


@pytest.mark.parametrize("acc, half_fs, expected", [(0.6197, 0.0279, 0.7819), (0.6607, 0.0465, 0.7839)])
def test_dlfd_notebook_outputs(acc, half_fs, expected):
    """The notebooks print |MIA-0.5|; NoMUS is the same on the paper's ×2 scale."""
    assert nomus(acc, forgetting_score(0.5 + half_fs)) == pytest.approx(expected, abs=1e-4)


def test_balance_keeps_the_smaller_set_whole():
    members, nonmembers = balance(np.arange(10.0), np.arange(4.0))
    assert len(members) == 4 and list(nonmembers) == [0, 1, 2, 3]
    assert set(members) <= set(range(10))
    members, nonmembers = balance(np.arange(3.0), np.arange(8.0))
    assert list(members) == [0, 1, 2] and len(nonmembers) == 3


def test_scale_free_attacks_see_tiny_but_separated_losses():
    """The paper's raw-loss attack cannot scale a feature this small; log-loss and AUC can."""
    rng = np.random.default_rng(1)
    members = np.exp(rng.normal(np.log(1e-5), 1.0, 200))
    nonmembers = np.exp(rng.normal(np.log(1e-3), 1.0, 200))
    result = mia_scores(members, nonmembers)
    assert result.mia < 0.55
    assert result.mia_logloss > 0.95
    assert result.mia_auc > 0.99


def test_multilabel_accuracy_is_per_attribute_mean():
    logits = torch.tensor([[1.0, -1.0, 1.0], [-2.0, 2.0, 0.5]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    assert correct(logits, targets, TaskKind.MULTILABEL).tolist() == pytest.approx([2 / 3, 1.0])


def test_multilabel_loss_is_bce_averaged_over_attributes():
    logits = torch.tensor([[0.0, 2.0]])
    targets = torch.tensor([[1.0, 0.0]])
    expected = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert task_loss(logits, targets, TaskKind.MULTILABEL, "none").item() == pytest.approx(expected)


def test_multiclass_loss_per_sample():
    logits = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    losses = task_loss(logits, torch.tensor([0, 0]), TaskKind.MULTICLASS, "none")
    assert losses[0].item() == pytest.approx(math.log(2))
    assert losses[1].item() == pytest.approx(math.log(1 + math.exp(-10)), rel=1e-3)  # float32


def test_mean_ci_known_answer():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert math.isnan(mean_ci([0.7])[1])


def test_time_ratio():
    assert time_ratio(3.0, 30.0) == pytest.approx(0.1)
    assert math.isnan(time_ratio(3.0, 0.0))


# Known answers from an independent implementation --------------------------------------------------------------------

@pytest.mark.parametrize("values", [[0.7, 0.9], [0.81, 0.79, 0.84], [0.5, 0.52, 0.49, 0.58, 0.51], [0.3] * 4])
def test_mean_ci_is_scipys_t_interval(values):
    mean, half = mean_ci(values)
    sem = statistics.stdev(values) / math.sqrt(len(values))
    low, high = stats.t.interval(0.95, len(values) - 1, loc=statistics.mean(values), scale=sem) if sem else (0, 0)
    assert mean == pytest.approx(statistics.mean(values))
    assert half == pytest.approx((high - low) / 2, abs=1e-12)


def test_mean_ci_skips_missing_values():
    assert mean_ci([0.7, None, math.nan, 0.9]) == pytest.approx(mean_ci([0.7, 0.9]))
    assert mean_ci([None, 0.4])[0] == 0.4 and math.isnan(mean_ci([None, 0.4])[1])
    assert all(math.isnan(v) for v in mean_ci([]) + mean_ci([None, math.nan]))


def recipe_mia(members: np.ndarray, nonmembers: np.ndarray) -> tuple[float, float, float, int]:
    """The MUFAC recipe written out by hand: keep a seed-42 shuffle of the larger set cut to the smaller one's size;
    ten stratified 90/10 shuffle splits (random_state 0), LogisticRegression() fitted and scored on each, on the raw
    loss and on log(loss + 1e-12) standardised with the training part's mean and (population) standard deviation;
    AUC as the share of member/non-member pairs where the member's loss is the lower one (ties count half)."""
    n = min(len(members), len(nonmembers))
    order = np.random.RandomState(42)
    if len(members) >= len(nonmembers):
        members = members[order.permutation(len(members))][:n]
    else:
        nonmembers = nonmembers[order.permutation(len(nonmembers))][:n]
    x = np.concatenate([members, nonmembers])
    y = np.array([1] * n + [0] * n)
    log_x = np.log(x + 1e-12)
    raw, logged = [], []
    for train, held in StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=0).split(x, y):
        raw.append(LogisticRegression().fit(x[train, None], y[train]).score(x[held, None], y[held]))
        mu, sd = log_x[train].mean(), log_x[train].std()
        z = (log_x - mu) / sd
        logged.append(LogisticRegression().fit(z[train, None], y[train]).score(z[held, None], y[held]))
    pairs = members[:, None] - nonmembers[None, :]
    auc = ((pairs < 0).sum() + 0.5 * (pairs == 0).sum()) / pairs.size
    return float(np.mean(raw)), float(np.mean(logged)), float(auc), n


@pytest.mark.parametrize("n_members, n_nonmembers", [(150, 90), (60, 110), (80, 80)])
def test_mia_scores_follow_the_recipe(n_members, n_nonmembers):
    rng = np.random.default_rng(n_members)
    members = np.exp(rng.normal(-3.0, 2.0, n_members))  # overlapping, heavy-tailed: every part of the recipe counts
    nonmembers = np.exp(rng.normal(-2.0, 2.0, n_nonmembers))
    members[:5] = 0.0  # exact zeros: the log feature's floor matters
    result = mia_scores(members, nonmembers)
    mia, mia_logloss, auc, n = recipe_mia(members, nonmembers)
    assert result.mia == pytest.approx(mia, abs=1e-12)
    assert result.mia_logloss == pytest.approx(mia_logloss, abs=1e-12)
    assert result.mia_auc == pytest.approx(auc, abs=1e-12)
    assert result.n_members == result.n_nonmembers == n
    assert 0.5 < auc < 0.9 and result.mia != result.mia_logloss  # the data separates partly, and differently


def test_mia_auc_reads_a_lower_loss_as_membership():
    members, nonmembers = np.linspace(0.0, 1.0, 40), np.linspace(0.5, 1.5, 40)  # a quarter of the pairs overlap
    pairs = members[:, None] - nonmembers[None, :]
    expected = ((pairs < 0).sum() + 0.5 * (pairs == 0).sum()) / pairs.size
    assert mia_scores(members, nonmembers).mia_auc == pytest.approx(expected)
    assert mia_scores(nonmembers, members).mia_auc == pytest.approx(1 - expected)


def test_balance_shuffles_the_members_when_both_sets_have_the_same_size():
    members, nonmembers = np.arange(20.0), np.arange(100.0, 120.0)
    kept, others = balance(members, nonmembers)
    assert list(kept) == list(members[np.random.RandomState(42).permutation(20)])
    assert list(others) == list(nonmembers)


def test_time_ratio_below_one_second_of_retraining():
    assert time_ratio(0.3, 0.5) == pytest.approx(0.6)
    assert math.isnan(time_ratio(1.0, -1.0))


def test_mean_or_nan_and_in_classes():
    assert mean_or_nan(np.array([0.0, 1.0, 1.0, 1.0])) == 0.75
    assert math.isnan(mean_or_nan(np.zeros(0)))
    split = Split(torch.zeros(5, 1, 1, 2, dtype=torch.uint8), torch.tensor([0, 3, 1, 3, 2]), tuple("abcde"))
    assert list(in_classes(split, (3,))) == [False, True, False, True, False]
    assert list(in_classes(split, (0, 2))) == [True, False, False, False, True]


# Scoring a model whose losses are known ------------------------------------------------------------------------------

class PixelLogits(nn.Module):
    """Two logits: 4 × the image's two pixels on the [0, 1] scale; a dropout in front shows whether eval mode is on."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(4.0 * x.flatten(1))


def pixel_split(pixels: list[tuple[int, int]], labels: list[int]) -> Split:
    images = torch.tensor(pixels, dtype=torch.uint8).view(-1, 1, 1, 2)
    return Split(images, torch.tensor(labels), tuple(str(i) for i in range(len(labels))))


def hand_losses(split: Split) -> tuple[list[float], list[float]]:
    """Cross-entropy and correctness from the pixels by hand: logits (4a, 4b), loss log(e^4a + e^4b) − the label's."""
    losses, right = [], []
    for (a, b), label in zip(split.images.view(-1, 2).tolist(), split.labels.tolist()):
        logits = (4 * a / 255, 4 * b / 255)
        losses.append(math.log(math.exp(logits[0]) + math.exp(logits[1])) - logits[label])
        right.append(float(logits[label] > logits[1 - label]))
    return losses, right


def role(n: int, seed: int, wrong: float, member_like: bool) -> Split:
    """n samples, the first `wrong` share predicted wrong; members are confident, others less so."""
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, 2, n).tolist()
    high = (200, 256) if member_like else (100, 200)
    pixels = []
    for i, label in enumerate(labels):
        top, low = int(rng.randint(*high)), int(rng.randint(0, 60))
        right = (top, low) if label == 0 else (low, top)
        pixels.append(right[::-1] if i < round(n * wrong) else right)
    return pixel_split(pixels, labels)


def test_losses_and_accuracy_in_eval_mode_over_several_batches():
    split = role(7, 0, wrong=2 / 7, member_like=False)
    model = PixelLogits()  # built in training mode: its dropout would scramble the logits
    losses, accuracy = losses_and_accuracy(model, split, TaskKind.MULTICLASS, Preprocess((0.0,), (1.0,)),
                                           torch.device("cpu"), batch_size=3)
    expected, right = hand_losses(split)
    assert not model.training
    assert list(losses) == pytest.approx(expected, rel=1e-5)
    assert accuracy == pytest.approx(5 / 7) and accuracy == pytest.approx(statistics.mean(right))
    empty = pixel_split([], [])
    losses, accuracy = losses_and_accuracy(model, empty, TaskKind.MULTICLASS, Preprocess((0.0,), (1.0,)),
                                           torch.device("cpu"))
    assert len(losses) == 0 and math.isnan(accuracy)


def toy_splits(**extra) -> Splits:
    parts = {"retain": role(20, 1, 0.0, True), "forget": role(30, 2, 0.1, True), "val": role(20, 3, 0.5, False),
             "test": role(40, 4, 0.25, False)}
    return Splits("toy", TaskKind.MULTICLASS, 2, Preprocess((0.0,), (1.0,)), "toy", **parts, **extra)


def scores_of(model, splits, losses: dict | None = None) -> dict[str, float]:
    """A cell's scores of `model`: accuracy per role, the attacks every cell is scored by, NoMUS."""
    plan = RunPlan([], [], [], [0], out=None, tracking_uri="", cache_dir=None)
    return cell_scores(SeedSetup(plan, splits, TOY_RECIPE, "toy", 0), model, MethodSpec("original"), None, 1.0,
                       losses)


def test_a_cells_scores_are_each_roles_accuracy_and_mean_loss_and_the_population_attacks():
    splits = toy_splits()
    scores = scores_of(PixelLogits(), splits)
    for name in ("retain", "forget", "val", "test"):
        losses, right = hand_losses(splits.role(name))
        assert scores[f"{name}_loss"] == pytest.approx(statistics.mean(losses), rel=1e-5)
        assert scores[f"{name}_acc"] == pytest.approx(statistics.mean(right))
    assert scores["test_acc"] == pytest.approx(0.75)
    assert "forgotten_test_acc" not in scores and "unseen_acc" not in scores
    attack = mia_scores(np.array(hand_losses(splits.forget)[0]), np.array(hand_losses(splits.test)[0]))
    assert scores["mia"] == pytest.approx(attack.mia) and scores["mia_auc"] == pytest.approx(attack.mia_auc)
    assert scores["mia_logloss"] == pytest.approx(attack.mia_logloss)
    assert scores["mia_members"] == scores["mia_nonmembers"] == 30
    assert scores["fs"] == pytest.approx(2 * abs(attack.mia - 0.5))
    assert scores["nomus"] == pytest.approx(0.5 * (0.75 + 1 - 2 * abs(attack.mia - 0.5)))


def test_class_wise_scores_split_the_test_set_and_attack_with_the_forgotten_class():
    """Forgetting class 1: utility is test accuracy on class 0, forgotten_test_acc on class 1, and the MIA's
    non-members are the held-out (here: unseen) images of class 1."""
    unseen = role(36, 5, 0.5, False)
    splits = toy_splits(unseen=unseen, forgotten_classes=(1,))
    scores = scores_of(PixelLogits(), splits)
    test_losses, test_right = hand_losses(splits.test)
    labels = splits.test.labels.tolist()
    assert scores["test_acc"] == pytest.approx(statistics.mean(r for r, y in zip(test_right, labels) if y == 0))
    assert scores["forgotten_test_acc"] == pytest.approx(
        statistics.mean(r for r, y in zip(test_right, labels) if y == 1))
    unseen_losses = hand_losses(unseen)[0]
    non_members = [loss for loss, y in zip(unseen_losses, unseen.labels.tolist()) if y == 1]
    attack = mia_scores(np.array(hand_losses(splits.forget)[0]), np.array(non_members))
    assert scores["mia_nonmembers"] == min(30, len(non_members)) < 30
    assert scores["mia"] == pytest.approx(attack.mia) and scores["mia_auc"] == pytest.approx(attack.mia_auc)
    assert scores["unseen_loss"] == pytest.approx(statistics.mean(unseen_losses), rel=1e-5)
    assert scores["nomus"] == pytest.approx(0.5 * (scores["test_acc"] + 1 - 2 * abs(attack.mia - 0.5)))
