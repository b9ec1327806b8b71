"""U-LiRA (mubench.attacks.ulira): the calibration's bookkeeping (IN from unlearned shadows, OUT from plain ones), a closed-form
answer where LiRA and U-LiRA disagree, what each shadow's unlearning run receives, and on a toy task the two exact
anchors: the Original's U-LiRA is its LiRA, and the Retrain reference is at chance."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from mubench.attacks import lira

from mubench.attacks import shadows

from mubench.attacks import ulira
from mubench.unlearn.api import METHODS
from mubench.data.splits import Split
from mubench.harness.plan import MethodSpec, RunPlan
from mubench.kits.method_kit import TOY_RECIPE, single_thread, toy_model, toy_splits
from mubench.train.training import train_reference


def shadow_set_of(phi, member, n_forget):
    return shadows.ShadowSet(np.asarray(phi, float), np.asarray(member, bool), n_forget, 0.0, 0, len(phi))


def test_in_comes_from_the_unlearned_shadows_and_out_from_the_plain_ones():
    rng = np.random.default_rng(0)
    k, n, n_forget = 16, 40, 20
    member = rng.random((k, n)) < 0.5
    plain, unlearned = rng.normal(0, 1, (k, n)), rng.normal(1, 1, (k, n))
    target, keep = rng.normal(0.5, 1, n), np.ones(n - n_forget, bool)
    before = ulira.ulira_metrics(target, unlearned, shadow_set_of(plain, member, n_forget), keep)
    # what an unlearned shadow says about an example it never trained on, and what a plain shadow says about an
    # example it trained on, are not read
    changed_unlearned = np.where(member, unlearned, 99.0)
    changed_plain = np.where(member, -99.0, plain)
    after = ulira.ulira_metrics(target, changed_unlearned, shadow_set_of(changed_plain, member, n_forget), keep)
    assert after == before
    moved = ulira.ulira_metrics(target, unlearned + 0.7 * member, shadow_set_of(plain, member, n_forget), keep)
    assert moved != before


def test_an_overshooting_unlearner_fools_lira_but_not_ulira():
    """Per example a difficulty μ_j; OUT: φ ~ N(μ_j, 1); trained-on: N(μ_j + 3, 1); unlearned by a method that
    overshoots: N(μ_j − 1.5, 1). The target's forget examples are unlearned, its held-out examples OUT. With the means
    known, U-LiRA's score falls with φ − μ_j, so its AUC is P(N(0,1) > N(−1.5,1)) = Φ(1.5/√2), while LiRA, calibrated
    on trained-on shadows, ranks the other way: 1 − Φ(1.5/√2)."""
    rng = np.random.default_rng(1)
    k, n_forget, n_out = 256, 1500, 1500
    n = n_forget + n_out
    difficulty = rng.normal(0, 2, n)
    member = rng.random((k, n)) < 0.5
    noise = rng.normal(0, 1, (k, n))
    plain = difficulty + noise + 3.0 * member
    unlearned = difficulty + noise - 1.5 * member
    target = difficulty + rng.normal(0, 1, n) - 1.5 * (np.arange(n) < n_forget)
    keep = np.ones(n_out, bool)
    set_ = shadow_set_of(plain, member, n_forget)
    expected = stats.norm.cdf(1.5 / np.sqrt(2))
    u = ulira.ulira_metrics(target, unlearned, set_, keep)
    assert u["ulira_auc"] == pytest.approx(expected, abs=0.03)
    fits = lira.fit_gaussians(plain, member)
    plain_lira = lira.attack_metrics(*np.split(lira.online_scores(target, fits), [n_forget]), "lira")
    assert plain_lira["lira_auc"] == pytest.approx(1 - expected, abs=0.03)


@pytest.fixture
def toy_shadows(tmp_path, monkeypatch):
    """shadow_model on toy models, cached under tmp_path, keyed by (seed, index, part) alone."""
    monkeypatch.setattr(shadows, "build_backbone", lambda name, outputs, head, pretrained: toy_model(outputs))
    monkeypatch.setattr(shadows, "shadow_fields",
                        lambda plan, splits, recipe, backbone, seed, index, part="": {
                            "seed": seed, "index": index, "part": part, "split": splits.split_hash})
    return RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=tmp_path, tracking_uri="", cache_dir=tmp_path,
                   quiet=True, attacks=("lira", "ulira"))


def test_each_shadow_is_unlearned_on_exactly_its_half_of_the_pool(toy_shadows, monkeypatch):
    splits = toy_splits(sizes={"retain": 24, "forget": 10, "val": 8, "test": 14})
    recipe = TOY_RECIPE.smoke()
    seen = []

    def spy_unlearn(self, model, data, ctx):
        retrained = ctx.retrained_model()
        seen.append((model, data, retrained))
        return model
    monkeypatch.setattr(METHODS.get("retrain"), "unlearn", spy_unlearn)
    with single_thread():
        set_ = shadows.shadow_set(toy_shadows, splits, recipe, "toy", 0, 3)
        phi, seconds = ulira.unlearned_shadow_phi(toy_shadows, MethodSpec("retrain"), None, splits, recipe, "toy", 0,
                                                  set_)
    pool = shadows.attack_pool(splits)
    assert phi.shape == (3, len(pool)) and len(seen) == 3
    for index, (model, data, retrained) in enumerate(seen):
        in_half = {i for i, is_in in zip(pool.ids, set_.member[index]) if is_in}
        assert set(data.forget.ids) == in_half and len(in_half) == len(pool) // 2
        assert data.retain is splits.retain and data.val is splits.val
        weights = shadows.shadow_model(toy_shadows, splits, recipe, "toy", 0, index)[0].state_dict()
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())  # the shadow itself
        # its φ entry was read from those weights
        assert np.allclose(set_.phi[index], shadows.confidence_logits(model, pool, splits.kind, splits.preprocess,
                                                                       torch.device("cpu")))
        alone = shadows.shadow_model(toy_shadows, splits, recipe, "toy", 0, index, retain_only=True)[0].state_dict()
        assert all(torch.equal(v, retrained.state_dict()[k]) for k, v in alone.items())  # its own Retrain
    assert seconds > 0  # the shadow Retrains' training time is charged, as a cell charges Retrain's


@pytest.mark.slow
def test_the_originals_ulira_is_its_lira_and_retrain_is_at_chance(toy_shadows):
    splits = toy_splits(seed=1, sizes={"retain": 96, "forget": 64, "val": 16, "test": 128})
    k = 16
    with single_thread():
        set_ = shadows.shadow_set(toy_shadows, splits, TOY_RECIPE, "toy", 0, k)
        targets = {}
        everything = Split(torch.cat([splits.retain.images, splits.forget.images]),
                           torch.cat([splits.retain.labels,
                                      splits.forget.labels]), splits.retain.ids + splits.forget.ids)
        for role, data in (("original", everything), ("retrain", splits.retain)):
            targets[role] = toy_model(4, seed=7)
            train_reference(targets[role], data, splits.kind, splits.preprocess, TOY_RECIPE, torch.device("cpu"), 7)
        scores = {name: ulira.ulira_scores(lira.pool_phi(model, splits, torch.device("cpu")), MethodSpec(name), None,
                                           toy_shadows, splits, TOY_RECIPE, "toy", 0, set_)
                  for name, model in targets.items()}
    plain = lira.lira_scores(targets["original"], splits, set_, torch.device("cpu"))
    for name in lira.FPRS:  # unlearning with `original` leaves every shadow as it was: the calibration is LiRA's
        assert scores["original"][f"ulira_{name}"] == plain[f"lira_{name}"]
    assert scores["original"]["ulira_auc"] == plain["lira_auc"]
    n1, n0 = len(splits.forget), len(splits.test)
    auc_sd = np.sqrt((n1 + n0 + 1) / (12 * n1 * n0))
    assert abs(scores["retrain"]["ulira_auc"] - 0.5) < 3 * auc_sd
    assert scores["retrain"]["ulira_runs"] == k
