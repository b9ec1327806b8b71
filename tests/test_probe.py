"""Representation probes (mubench.attacks.probe): each probe's known answers, the kit, the models left untouched."""
import copy
import dataclasses
import types

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from mubench.attacks.base import AttackedCell, SeedContext
from mubench.attacks.probe import Probe, linear_cka, membership_auc, membership_floor, probe_accuracy
from mubench.core.losses import TaskKind
from mubench.harness.plan import MethodSpec, RunPlan
from mubench.kits.attack_kit import check_attack
from mubench.kits.method_kit import TOY_RECIPE, _same_state, single_thread, toy_cell, toy_splits
from mubench.scores.metrics import penultimate

CKA_COLUMNS = {"probe_cka_forget", "probe_cka_test"}


def _gaussians(n: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)) + shift


def test_the_membership_probe_reads_chance_on_one_distribution_and_one_on_separable_sets():
    assert abs(membership_auc(_gaussians(200, 32, 1), _gaussians(200, 32, 2), seed=0) - 0.5) < 0.1
    assert membership_auc(_gaussians(200, 32, 1, shift=1.0), _gaussians(200, 32, 2), seed=0) > 0.95


def test_the_membership_probe_balances_the_larger_side_and_is_repeatable():
    members, nonmembers = _gaussians(40, 8, 1), _gaussians(400, 8, 2)
    auc = membership_auc(members, nonmembers, seed=3)
    assert abs(auc - 0.5) < 0.15 and auc == membership_auc(members, nonmembers, seed=3)


def test_a_probe_scored_on_the_images_it_fits_on_would_read_membership_where_there_is_none():
    members, nonmembers = _gaussians(60, 128, 1), _gaussians(60, 128, 2)
    x, labels = np.concatenate([members, nonmembers]), np.r_[np.ones(60), np.zeros(60)]
    fitted = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, labels)
    assert roc_auc_score(labels, fitted.decision_function(x)) > 0.95  # the wrong variant
    assert abs(membership_auc(members, nonmembers, seed=0) - 0.5) < 0.15


def test_the_no_signal_fs_holds_the_probe_on_identical_sets_95_percent_of_the_time_and_not_a_separable_one():
    fs_and_floor = [(2 * abs(membership_auc(m, n, seed) - 0.5), membership_floor(m, n, seed, permutations=30))
                    for seed in range(30) for m, n in [(_gaussians(50, 64, 2 * seed), _gaussians(50, 64, 2 * seed + 1))]]
    above = sum(fs > floor for fs, floor in fs_and_floor)
    assert above <= 5  # about 1.5 of 30 expected
    assert min(floor for _, floor in fs_and_floor) > 0.15  # pure noise at 64 dimensions reads far from FS 0
    separable = _gaussians(50, 64, 1, shift=1.0), _gaussians(50, 64, 2)
    assert 2 * abs(membership_auc(*separable, seed=0) - 0.5) > membership_floor(*separable, seed=0, permutations=30)


def test_the_probe_note_says_when_no_cell_reads_membership_above_its_floor():
    import pandas as pd
    cells = pd.DataFrame({"status": ["FINISHED"] * 4, "label": ["original", "original", "retrain", "dlfd"],
                          "probe_fs": [0.10, 0.30, 0.05, 0.25], "probe_floor": [0.2, 0.2, 0.2, 0.2]})
    assert "2 of 4 cells" in Probe.note(cells) and "the Original: 1 of 2 seeds)." in Probe.note(cells)
    cells["probe_fs"] = 0.1
    assert "0 of 4 cells" in Probe.note(cells) and "probe FS differences between rows are noise" in Probe.note(cells)


def test_linear_cka_is_one_on_the_same_representation_up_to_rotation_and_scale():
    x = _gaussians(300, 16, 1)
    rotation, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(16, 16)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.5 * x @ rotation) == pytest.approx(1.0)
    assert linear_cka(x @ rotation, x) == pytest.approx(1.0)


def test_linear_cka_is_about_zero_on_independent_features_and_zero_without_variance():
    assert linear_cka(_gaussians(4000, 8, 1), _gaussians(4000, 8, 2)) < 0.02
    assert linear_cka(_gaussians(50, 4, 1), np.ones((50, 4))) == 0.0


def test_the_task_probe_reads_class_structure_and_chance_without_it():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(4, 16))
    labels = np.arange(800) % 4
    x = centres[labels] + rng.normal(size=(800, 16))
    assert probe_accuracy(x[:600], labels[:600], x[600:], labels[600:]) > 0.95
    shuffled = rng.permutation(labels)
    assert abs(probe_accuracy(x[:600], shuffled[:600], x[600:], shuffled[600:]) - 0.25) < 0.1


def test_the_task_probe_averages_attributes_on_a_multilabel_task():
    rng = np.random.default_rng(0)
    labels = (rng.random((600, 3)) < 0.5).astype(float)
    x = np.c_[4.0 * labels[:, :2], rng.normal(size=(600, 6))] + rng.normal(size=(600, 8)) * 0.1
    labels[:400, 2] = 1.0  # constant where the probe fits: predicted as that constant
    accuracy = probe_accuracy(x[:400], labels[:400], x[400:], labels[400:], TaskKind.MULTILABEL)
    assert accuracy == pytest.approx((1.0 + 1.0 + labels[400:, 2].mean()) / 3, abs=0.02)


def _context(cell, retrained=True, splits=None) -> SeedContext:
    plan = RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=None, tracking_uri="", cache_dir=None,
                   quiet=True, attacks=("probe",))
    return SeedContext(plan, splits or cell.splits, TOY_RECIPE, "toy", 0, None, 1.0, cell.original,
                       cell.retrained if retrained else None)


def _score(context, model) -> dict:
    with single_thread():
        return Probe(context).score(AttackedCell(model, MethodSpec("original")))


def test_the_probe_passes_the_attack_kit():
    check_attack("probe")


def test_the_probe_leaves_the_scored_model_and_retrain_as_it_found_them():
    cell = toy_cell()
    model = cell.model().train()
    model.body.layer1.eval()  # a mixed mode, as a method that freezes BatchNorm leaves it
    modes = [m.training for m in model.modules()]
    before, retrain_before = copy.deepcopy(model), copy.deepcopy(cell.retrained)
    scores = _score(_context(cell), model)
    assert not _same_state(model, before) and [m.training for m in model.modules()] == modes
    assert not _same_state(cell.retrained, retrain_before)
    assert {c.metric for c in Probe.columns} <= set(scores)


def test_the_retrain_row_is_the_same_representation_as_retrain():
    cell = toy_cell()
    retrain, original = _score(_context(cell), copy.deepcopy(cell.retrained)), _score(_context(cell), cell.model())
    assert retrain["probe_cka_forget"] == pytest.approx(1.0) and retrain["probe_cka_test"] == pytest.approx(1.0)
    assert original["probe_cka_forget"] < 1.0


def test_without_a_retrain_model_the_cka_columns_are_left_out():
    cell = toy_cell()
    scores = _score(_context(cell, retrained=False), cell.model())
    assert set(scores) == {c.metric for c in Probe.columns} - CKA_COLUMNS


class Pixels(nn.Module):
    """Features = the preprocessed pixels: seen and unseen images of one class are alike, classes are apart."""
    def features(self, x):
        return x.flatten(1)


def test_class_wise_non_members_are_test_images_of_the_forgotten_class():
    splits = toy_splits(sizes={"retain": 160, "forget": 160, "val": 4, "test": 400})
    forget = splits.forget.subset(torch.nonzero(splits.forget.labels == 0).flatten())
    retain = splits.retain.subset(torch.nonzero(splits.retain.labels != 0).flatten())
    class_wise = dataclasses.replace(splits, retain=retain, forget=forget, forgotten_classes=(0,))
    cell = types.SimpleNamespace(splits=class_wise, original=Pixels(), retrained=Pixels())
    scores = _score(_context(cell), Pixels())
    other_classes = splits.test.subset(torch.nonzero(splits.test.labels != 0).flatten())
    read_the_class = membership_auc(*(penultimate(Pixels(), s, splits, torch.device("cpu"))
                                      for s in (forget, other_classes)), seed=0)  # the wrong non-members
    assert read_the_class > 0.95 and scores["probe_fs"] < 0.4
    assert scores["probe_acc"] > 0.9  # fitted and scored on the three remaining classes only
