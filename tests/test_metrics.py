import math

import numpy as np
import pytest
import torch

from mubench.leaderboard import mean_ci
from mubench.losses import TaskKind, correct, task_loss
from mubench.metrics import balance, forgetting_score, mia_scores, nomus, time_ratio


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
