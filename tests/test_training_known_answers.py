"""The training loop's pieces against closed forms: the task losses, the distillation KL, the optimisers' settings,
the schedules per optimiser step, and a reference recipe's step milestones."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mubench.core.losses import TaskKind, correct, distill_kl, soft_predictions, task_loss
from mubench.train.training import fit, make_optimizer, make_scheduler


def test_multiclass_loss_is_cross_entropy_per_sample_and_mean():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    targets = torch.tensor([0, 2])
    by_hand = [-(2.0 - math.log(math.exp(2) + 1 + math.exp(-1))), -(0.0 - math.log(2 + math.e))]
    assert task_loss(logits, targets, TaskKind.MULTICLASS, "none").tolist() == pytest.approx(by_hand)
    assert task_loss(logits, targets, TaskKind.MULTICLASS).item() == pytest.approx(sum(by_hand) / 2)


def test_multilabel_loss_averages_attributes_then_samples():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    def bce(z, t):
        return -(t * math.log(1 / (1 + math.exp(-z))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-z))))
    per_sample = [(bce(0, 1) + bce(2, 0)) / 2, (bce(-1, 0) + bce(1, 0)) / 2]
    assert task_loss(logits, targets, TaskKind.MULTILABEL, "none").tolist() == pytest.approx(per_sample)
    assert task_loss(logits, targets, TaskKind.MULTILABEL).item() == pytest.approx(sum(per_sample) / 2)
    assert correct(logits, targets, TaskKind.MULTILABEL).tolist() == [0.0, 0.5]


def test_distillation_kl_is_the_bernoulli_kl_per_attribute_and_zero_at_the_teacher():
    student = torch.tensor([[0.5, -1.0]])
    teacher = torch.tensor([[0.8, 0.3]])
    def kl(t, z):
        s = 1 / (1 + math.exp(-z))
        return t * math.log(t / s) + (1 - t) * math.log((1 - t) / (1 - s))
    expected = (kl(0.8, 0.5) + kl(0.3, -1.0)) / 2
    assert distill_kl(student, teacher, TaskKind.MULTILABEL).item() == pytest.approx(expected)
    same = soft_predictions(student, TaskKind.MULTILABEL, temperature=2.0)
    assert distill_kl(student, same, TaskKind.MULTILABEL, temperature=2.0).item() == pytest.approx(0.0, abs=1e-7)
    probs = soft_predictions(torch.tensor([[1.0, 0.0, 2.0]]), TaskKind.MULTICLASS, temperature=2.0)
    assert probs.tolist()[0] == pytest.approx(F.softmax(torch.tensor([0.5, 0.0, 1.0]), 0).tolist())


def test_optimisers_take_the_configured_rates():
    weights = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2), requires_grad=False)]
    sgd = make_optimizer(weights, "sgd", 0.03, momentum=0.8, weight_decay=1e-3)
    assert sgd.param_groups[0]["lr"] == 0.03 and sgd.param_groups[0]["momentum"] == 0.8
    assert sgd.param_groups[0]["weight_decay"] == 1e-3 and len(sgd.param_groups[0]["params"]) == 1
    adam = make_optimizer(weights, "adam", 0.004, weight_decay=2e-4)
    assert isinstance(adam, torch.optim.Adam)
    assert adam.param_groups[0]["lr"] == 0.004 and adam.param_groups[0]["weight_decay"] == 2e-4


def rates(schedule: str, total: int, milestones=()):
    optimizer = make_optimizer([torch.nn.Parameter(torch.zeros(1))], "sgd", 0.1)
    scheduler = make_scheduler(optimizer, schedule, total, milestones)
    out = []
    for _ in range(total + 2):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_schedules_per_step():
    cosine = rates("cosine", 8)
    assert cosine[:9] == pytest.approx([0.1 * 0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(9)])
    assert cosine[9] == pytest.approx(0.0, abs=1e-12)  # past the end it stays at zero
    assert rates("constant", 5) == pytest.approx([0.1] * 7)
    assert rates("step", 6, (2, 4)) == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.001, 0.001])


def test_a_reference_trains_the_same_whatever_drew_from_torch_before_and_on_the_run_device(monkeypatch):
    """Dropout draws from torch's global generator: the recipe seeds it, so the weights depend on the seed alone;
    the batches are built for the run's device."""
    from mubench.train import training
    from mubench.kits.method_kit import toy_model, toy_splits
    splits = toy_splits()
    recipe = training.Recipe(epochs=1, batch_size=16, lr=0.05)

    def trained(seed, noise):
        model = torch.nn.Sequential(toy_model(4, seed=3), torch.nn.Dropout(0.5))
        torch.randn(noise)
        training.train_reference(model, splits.retain, splits.kind, splits.preprocess, recipe, torch.device("cpu"),
                                 seed)
        return model.state_dict()
    a, b, c = trained(0, 1), trained(0, 7), trained(1, 1)
    assert all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], c[k]) for k in a)
    devices = []
    real = training.BatchLoader
    monkeypatch.setattr(training, "BatchLoader", lambda *args, **kw: devices.append(kw.get("device")) or real(*args, **kw))
    training.train_reference(toy_model(4), splits.retain, splits.kind, splits.preprocess, recipe,
                             torch.device("cpu"), 0)
    assert devices == [torch.device("cpu")]


def test_seed_everything_seeds_pythons_numpys_and_torchs_global_generators():
    import random

    import numpy as np

    from mubench.core.seeds import seed_everything
    seed_everything(11)
    drawn = random.random(), np.random.rand(), torch.rand(1).item()
    assert drawn == (random.Random(11).random(), np.random.RandomState(11).rand(),
                     torch.rand(1, generator=torch.Generator().manual_seed(11)).item())


def test_a_tasks_recipe_cannot_be_changed_in_place():
    """One Recipe object serves every cell of a task and enters their keys: an in-place edit would change cells
    that were already keyed."""
    import dataclasses

    from mubench.data.tasks import TASKS
    recipe = TASKS.get("digits")().recipe
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.epochs = recipe.epochs + 1


def test_fit_trains_in_train_mode_and_leaves_the_model_in_eval_mode():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    modes = []

    def step_loss(m, batch):
        modes.append(m.training)
        return m(batch).sum()
    fit(model, lambda epoch: [torch.ones(3, 2)] * 2, step_loss, make_optimizer(model.parameters(), "sgd", 0.1), 2)
    assert modes == [True] * 4 and not model.training
