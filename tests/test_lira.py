"""LiRA (mubench.attacks.lira, mubench.attacks.shadows): the statistics against closed forms computed here with scipy, the shadows'
IN/OUT bookkeeping, the attack at chance on a model that never saw the forget set, and the attack kept out of a
method's reach. The board's LiRA columns are tested with the other board columns (test_board_render)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from mubench.attacks import lira

from mubench.attacks import shadows
from mubench.unlearn.api import METHODS
from mubench.data.splits import Split
from mubench.run.cell import run_cell
from mubench.core.losses import TaskKind
from mubench.harness.plan import MethodSpec, RunPlan, SeedSetup
from mubench.harness.references import References
from mubench.kits.method_kit import (TOY_RECIPE, reachable_test_paths, single_thread, toy_cell, toy_model, toy_splits)
from mubench.core.tracking import open_store
from mubench.train.training import train_reference


def synthetic_shadows(rng, k, n, mean_in, mean_out, sd_in, sd_out):
    """φ of n examples under k shadows, each IN with probability ½: N(mean_in, sd_in) when IN, else N(mean_out,
    sd_out)."""
    member = rng.random((k, n)) < 0.5
    phi = np.where(member, rng.normal(mean_in, sd_in, (k, n)), rng.normal(mean_out, sd_out, (k, n)))
    return phi, member


def test_fits_recover_known_means_and_global_variance():
    rng = np.random.default_rng(0)
    k, n = 400, 50
    mean_in, mean_out = rng.normal(3, 1, n), rng.normal(-1, 1, n)
    phi, member = synthetic_shadows(rng, k, n, mean_in, mean_out, 0.7, 1.3)
    fits = lira.fit_gaussians(phi, member, per_example_variance=False)
    # standard error of a per-example mean from about k/2 draws; 6 of them is far outside chance
    assert np.abs(fits.mean_in - mean_in).max() < 6 * 0.7 / np.sqrt(k / 2 * 0.8)
    assert np.abs(fits.mean_out - mean_out).max() < 6 * 1.3 / np.sqrt(k / 2 * 0.8)
    assert np.ptp(fits.std_in) == 0 and np.ptp(fits.std_out) == 0
    assert fits.std_in[0] == pytest.approx(0.7, rel=0.05) and fits.std_out[0] == pytest.approx(1.3, rel=0.05)
    per_example = lira.fit_gaussians(phi, member, per_example_variance=True)
    assert per_example.std_in == pytest.approx(np.full(n, 0.7), rel=0.35)


def test_fits_read_in_values_only_from_shadows_that_trained_on_the_example():
    rng = np.random.default_rng(1)
    member = rng.random((8, 30)) < 0.5
    member[:, 0] = [True] + [False] * 7  # one IN shadow
    member[:, 1] = False  # no IN shadow: the mean over examples of IN values stands in
    phi = np.where(member, 5.0, -2.0)
    fits = lira.fit_gaussians(phi, member)
    assert np.all(fits.mean_in == 5.0) and np.all(fits.mean_out == -2.0)


def test_scores_are_the_gaussian_likelihood_ratio_and_the_out_tail():
    rng = np.random.default_rng(2)
    n = 40
    fits = lira.GaussianFits(rng.normal(2, 1, n), rng.normal(-1, 1, n), rng.uniform(0.5, 2, n), rng.uniform(0.5, 2, n))
    phi = rng.normal(0, 2, n)
    ratio = (stats.norm(fits.mean_in, fits.std_in).pdf(phi) / stats.norm(fits.mean_out, fits.std_out).pdf(phi))
    assert lira.online_scores(phi, fits) == pytest.approx(np.log(ratio), rel=1e-9, abs=1e-9)
    tail = 1 - stats.norm(fits.mean_out, fits.std_out).sf(phi)
    assert np.exp(lira.offline_scores(phi, fits)) == pytest.approx(tail, rel=1e-9)


@pytest.mark.parametrize("fpr", [0.01, 0.05])
def test_tpr_at_fpr_and_auc_match_the_binormal_closed_form(fpr):
    rng = np.random.default_rng(3)
    separation = 1.5  # members' scores N(1.5, 1), non-members' N(0, 1)
    members, nonmembers = rng.normal(separation, 1, 200_000), rng.normal(0, 1, 200_000)
    out = lira.attack_metrics(members, nonmembers, "x")
    expected_tpr = stats.norm.sf(stats.norm.isf(fpr) - separation)
    name = {0.01: "x_tpr1", 0.05: "x_tpr5"}[fpr]
    assert out[name] == pytest.approx(expected_tpr, abs=0.01)
    assert out["x_auc"] == pytest.approx(stats.norm.cdf(separation / np.sqrt(2)), abs=0.005)


def test_online_attack_on_gaussian_phi_reaches_the_closed_form_tpr():
    """Shadows and target drawn from the same known Gaussians: the fitted attack's TPR at 1 % FPR is the one the
    exact likelihood-ratio test achieves (equal variances: a threshold on φ)."""
    rng = np.random.default_rng(4)
    k, n = 64, 40_000
    gap = rng.normal(2.0, 0.3, n)  # per-example IN-minus-OUT shift
    mean_out = rng.normal(0, 2, n)
    phi, member = synthetic_shadows(rng, k, n, mean_out + gap, mean_out, 1.0, 1.0)
    fits = lira.fit_gaussians(phi, member, per_example_variance=False)
    is_member = np.arange(n) < n // 2
    target = np.where(is_member, rng.normal(mean_out + gap, 1.0), rng.normal(mean_out, 1.0))
    scores = lira.online_scores(target, fits)
    out = lira.attack_metrics(scores[is_member], scores[~is_member], "lira")
    # exact LR per example ∝ gap·(φ − μ_out − gap/2); averaged over the gaps' spread the TPR at 1 % is near the
    # one at the mean gap; the bound below allows the spread and the fit's noise
    lower = stats.norm.sf(stats.norm.isf(0.01) - 2.0 + 0.5)
    upper = stats.norm.sf(stats.norm.isf(0.01) - 2.0 - 0.5)
    assert lower < out["lira_tpr1"] < upper
    assert out["lira_auc"] == pytest.approx(stats.norm.cdf(2.0 / np.sqrt(2)), abs=0.02)


def test_each_example_is_in_about_half_of_the_shadows():
    pool, k = 549, 16
    member = np.array([shadows.shadow_members(pool, 0, i) for i in range(k)])
    assert np.all(member.sum(axis=1) == pool // 2)  # each shadow: a half of the pool
    counts = member.sum(axis=0)
    low, high = stats.binom.ppf([1e-7, 1 - 1e-7], k, 0.5)
    assert counts.min() >= low and counts.max() <= high
    assert counts.mean() == pytest.approx(k / 2, abs=0.1)
    assert np.array_equal(shadows.shadow_members(pool, 0, 3), member[3])  # seeded by (seed, index) alone
    assert not np.array_equal(shadows.shadow_members(pool, 1, 3), member[3])


def test_a_shadow_trains_on_retain_and_exactly_its_in_examples(monkeypatch):
    splits = toy_splits(sizes={"retain": 20, "forget": 10, "val": 6, "test": 14})
    trained_on = {}

    def fake_train(model, split, *args, **kwargs):
        trained_on["ids"] = set(split.ids)
        return 0.0
    monkeypatch.setattr(shadows, "train_reference", fake_train)
    phi, member, _ = shadows.train_shadow(splits, TOY_RECIPE, lambda: toy_model(4), torch.device("cpu"), 0, 5)
    pool = shadows.attack_pool(splits)
    assert pool.ids == splits.forget.ids + splits.test.ids  # forget first, then the held-out role
    assert len(phi) == len(pool) and member.sum() == len(pool) // 2
    for example, is_in in zip(pool.ids, member):
        assert (example in trained_on["ids"]) == bool(is_in)  # never trained on it: OUT
    assert set(splits.retain.ids) <= trained_on["ids"]
    assert not set(splits.val.ids) & trained_on["ids"]


def test_phi_is_the_log_odds_of_the_true_label():
    splits = toy_splits(sizes={"retain": 4, "forget": 4, "val": 4, "test": 8})
    model = toy_model(4).eval()
    phi = shadows.confidence_logits(model, splits.test, splits.kind, splits.preprocess, torch.device("cpu"))
    with torch.no_grad():
        p = model(splits.preprocess.to_input(splits.test.images)).double().softmax(1)
    p = p[torch.arange(len(p)), splits.test.labels].numpy()
    assert phi == pytest.approx(np.log(p / (1 - p)), rel=1e-6)
    multi = toy_splits(TaskKind.MULTILABEL, num_outputs=3, sizes={"retain": 4, "forget": 4, "val": 4, "test": 8})
    model = toy_model(3).eval()
    phi = shadows.confidence_logits(model, multi.test, multi.kind, multi.preprocess, torch.device("cpu"))
    with torch.no_grad():
        q = model(multi.preprocess.to_input(multi.test.images)).double().sigmoid()
    p = torch.where(multi.test.labels > 0.5, q, 1 - q).numpy()
    assert phi == pytest.approx(np.log(p / (1 - p)).mean(axis=1), rel=1e-6)


def test_class_wise_non_members_are_the_held_out_images_of_the_forgotten_class():
    splits = toy_splits(sizes={"retain": 8, "forget": 8, "val": 4, "test": 12})
    splits.forgotten_classes = (2,)
    assert np.array_equal(lira.nonmember_mask(splits), splits.test.labels.numpy() == 2)


@pytest.fixture
def cell_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    open_store(uri, tmp_path)
    plan = RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=tmp_path, tracking_uri=uri, cache_dir=tmp_path,
                   quiet=True)
    return plan


def test_the_attack_scores_the_methods_result_and_changes_nothing_a_method_receives(cell_store, monkeypatch):
    import mlflow
    cell = toy_cell()
    refs = References(cell.original, cell.retrained, {"key": "o"}, {"train_seconds": 1.0})
    seen = []

    def spy_unlearn(self, model, data, ctx):
        seen.append((data, ctx))
        return model
    monkeypatch.setattr(METHODS.get("original"), "unlearn", spy_unlearn)
    attacked = []

    def attack(model, spec, config):
        attacked.append(model)
        return {"lira_auc": 0.5}
    spec = MethodSpec("original")
    with mlflow.start_run():
        plain = run_cell(SeedSetup(cell_store, cell.splits, TOY_RECIPE, "toy", 0), refs, spec,
                         spec.config_for(cell.splits.task))
        with_attack = run_cell(SeedSetup(cell_store, cell.splits, TOY_RECIPE, "toy", 0), refs, spec,
                               spec.config_for(cell.splits.task), attack=attack)
    assert len(attacked) == 1 and isinstance(attacked[0], torch.nn.Module)
    timing = ("unlearn_seconds", "time_ratio")
    assert with_attack["lira_auc"] == 0.5 and set(with_attack) == set(plain) | {"lira_auc"}
    assert {k: plain[k] for k in plain if k not in timing} == {k: with_attack[k] for k in plain if k not in timing}
    for data, ctx in seen:
        assert reachable_test_paths({"data": data, "ctx": ctx}, cell.splits.test) == []
        assert not any(obj is attack for obj in (*vars(data).values(), *vars(ctx).values()))


@pytest.mark.slow
def test_retrain_is_at_chance_and_the_original_is_not():
    """Toy task, 16 shadows: Retrain (never saw forget) reads AUC ≈ 0.5 and TPR ≈ FPR; the Original, which
    memorised the forget set, reads higher."""
    splits = toy_splits(seed=1, sizes={"retain": 96, "forget": 64, "val": 16, "test": 128})
    device = torch.device("cpu")
    k = 16
    with single_thread():
        trained = [shadows.train_shadow(splits, TOY_RECIPE, lambda: toy_model(4, seed=100 + i), device, 0, i)
                   for i in range(k)]
        models = {}
        everything = Split(torch.cat([splits.retain.images, splits.forget.images]),
                           torch.cat([splits.retain.labels,
                                      splits.forget.labels]), splits.retain.ids + splits.forget.ids)
        for role, data in (("original", everything), ("retrain", splits.retain)):
            models[role] = toy_model(4, seed=7)
            train_reference(models[role], data, splits.kind, splits.preprocess, TOY_RECIPE, device, 7)
    shadow_set = shadows.ShadowSet(np.array([t[0] for t in trained]), np.array([t[1] for t in trained]),
                                   len(splits.forget), 0.0, 0, k)
    retrain = lira.lira_scores(models["retrain"], splits, shadow_set, device)
    original = lira.lira_scores(models["original"], splits, shadow_set, device)
    n1, n0 = len(splits.forget), len(splits.test)
    auc_sd = np.sqrt((n1 + n0 + 1) / (12 * n1 * n0))  # the null AUC's standard deviation (Mann-Whitney)
    assert abs(retrain["lira_auc"] - 0.5) < 3 * auc_sd
    for name, rate in lira.FPRS.items():  # TPR at FPR α: at most a binomial upper tail of α's share of n1
        assert retrain[f"lira_{name}"] <= stats.binom.ppf(0.999, n1, 2 * rate) / n1
    assert original["lira_auc"] > 0.5 + 3 * auc_sd
    assert original["lira_tpr5"] > retrain["lira_tpr5"]



def test_shadows_without_the_attack_is_refused(tmp_path):
    from click.testing import CliRunner
    from mubench.cli.main import main
    result = CliRunner().invoke(main, ["run", "--shadows", "4", "--preset", "smoke", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--shadows 4 needs an attack that trains shadow models" in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_per_example_scores_are_the_ones_the_metrics_read_and_the_report_draws_them(cell_store, tmp_path):
    """The cell's artifact holds the online score of each forget example and each non-member; the AUC recomputed
    from it is the logged one, and `mubench report` draws one histogram panel per cell that logged it."""
    import mlflow
    from mlflow.tracking import MlflowClient
    from sklearn.metrics import roc_auc_score

    from mubench.run.executors import log_attack_examples
    from mubench.boards.report import _draw_attack_scores
    cell = toy_cell()
    rng = np.random.default_rng(0)
    pool = len(cell.splits.forget) + len(cell.splits.test)
    member = np.array([shadows.shadow_members(pool, 0, i) for i in range(8)])
    shadow_set = shadows.ShadowSet(rng.normal(0, 1, (8, pool)) + 2 * member, member, len(cell.splits.forget), 0., 0, 8)
    examples = {}
    scores = lira.lira_scores(cell.original, cell.splits, shadow_set, torch.device("cpu"), examples)
    assert len(examples["lira_members"]) == len(cell.splits.forget)
    assert len(examples["lira_nonmembers"]) == len(cell.splits.test)
    labels = np.r_[np.ones(len(examples["lira_members"])), np.zeros(len(examples["lira_nonmembers"]))]
    assert roc_auc_score(labels, np.r_[examples["lira_members"], examples["lira_nonmembers"]]) == scores["lira_auc"]
    runs = {}
    for label, logged in (("finetune", True), ("scrub", False)):
        with mlflow.start_run() as run:
            if logged:
                log_attack_examples(examples)
        runs[label] = run.info.run_id
    import pandas as pd
    cells = pd.DataFrame({"label": list(runs), "run_id": list(runs.values())})
    drawn = _draw_attack_scores(MlflowClient(cell_store.tracking_uri), cell_store.tracking_uri, cells, tmp_path / "f",
                                "toy")
    assert drawn == {"lira": "lira-attack-scores.png"}  # no U-LiRA scores were logged; scrub logged none
    assert (tmp_path / "f" / "lira-attack-scores.png").stat().st_size > 0
