"""LiRA and U-LiRA on a fixed synthetic shadow set (K = 16) of a class-wise split with a separate `unseen` role,
against a computation written out here in plain Python: per-example means, one pooled σ per side below K = 64, the
online likelihood ratio and the offline OUT tail, the forgotten class's unseen images as the only non-members, AUC
by counting pairs, and TPR at an FPR the non-members reach exactly. And, without training anything, the anchor "the
Original's U-LiRA is its LiRA"."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mubench.core.store import ATTACK_SCORES
from mubench.attacks import lira

from mubench.attacks import shadows

from mubench.attacks import ulira
from mubench.attacks.base import resolve_attacks
from mubench.data.splits import Preprocess, Split, Splits
from mubench.core.losses import TaskKind
from mubench.harness.plan import MethodSpec, RunPlan, SeedSetup
from mubench.harness.references import References
from mubench.kits.method_kit import TOY_RECIPE, toy_model

K, N_FORGET = 16, 16
UNSEEN_LABELS = [1] * 20 + [0] * 5 + [2] * 5  # 20 non-members of the forgotten class: one false positive is 5 % FPR
FORGOTTEN = 1


def split(labels, prefix, seed):
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (len(labels), 3, 8, 8), dtype=torch.uint8, generator=g),
                 torch.tensor(labels), tuple(f"{prefix}-{i}" for i in range(len(labels))))


def class_wise_splits() -> Splits:
    """Class 1 forgotten: forget is all of it; `unseen` (the attack's held-out role) mixes it with other classes;
    `test` (which the attack must not read when `unseen` exists) has other sizes."""
    return Splits("toy", TaskKind.MULTICLASS, 3, Preprocess((0.5,) * 3, (0.5,) * 3), "toy",
                  retain=split([0, 2] * 12, "retain", 0), forget=split([FORGOTTEN] * N_FORGET, "forget", 1),
                  val=split([0, 1, 2] * 4, "val", 2), test=split([0, 1, 2] * 3, "test", 3),
                  unseen=split(UNSEEN_LABELS, "unseen", 4), scenario=f"class:{FORGOTTEN}",
                  forgotten_classes=(FORGOTTEN,))


def synthetic_phi(seed: int, member: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(member, rng.normal(2.0, 1.5, member.shape), rng.normal(-0.5, 0.8, member.shape))


def memberships(pool_size: int) -> np.ndarray:
    return np.array([shadows.shadow_members(pool_size, 0, k) for k in range(K)])


# The computation by hand -----------------------------------------------------------------------------------------

def side(phi, member, inside: bool):
    """Per-example means over the shadows on that side, and σ pooled over every (shadow, example) entry's deviation
    from its example's mean, with one degree of freedom per example."""
    means, squares, entries, examples = [], 0.0, 0, 0
    for j in range(len(phi[0])):
        values = [phi[k][j] for k in range(len(phi)) if bool(member[k][j]) == inside]
        mean = sum(values) / len(values)
        means.append(mean)
        squares += sum((v - mean) ** 2 for v in values)
        entries, examples = entries + len(values), examples + 1
    return means, math.sqrt(squares / (entries - examples))


def log_normal(x, mean, sd):
    return -0.5 * ((x - mean) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)


def by_hand(target, phi, member):
    mean_in, sd_in = side(phi, member, True)
    mean_out, sd_out = side(phi, member, False)
    online = [log_normal(t, mi, sd_in) - log_normal(t, mo, sd_out) for t, mi, mo in zip(target, mean_in, mean_out)]
    offline = [math.log(0.5 * math.erfc(-(t - mo) / (sd_out * math.sqrt(2)))) for t, mo in zip(target, mean_out)]
    return online, offline


def non_member_scores(scores):
    unseen = scores[N_FORGET:]
    return [s for s, label in zip(unseen, UNSEEN_LABELS) if label == FORGOTTEN]


def auc(members, non_members):
    pairs = [1.0 if m > n else 0.5 if m == n else 0.0 for m in members for n in non_members]
    return sum(pairs) / len(pairs)


def tpr_at(members, non_members, fpr, strict=False):
    """The best share of members at or above a threshold that puts at most `fpr` of the non-members there
    (`strict`: below `fpr`, the wrong reading of the boundary)."""
    best = 0.0
    for threshold in sorted(members + non_members) + [math.inf]:
        false = sum(n >= threshold for n in non_members) / len(non_members)
        if false < fpr if strict else false <= fpr:
            best = max(best, sum(m >= threshold for m in members) / len(members))
    return best


def expected_metrics(prefix, scores):
    members, non_members = scores[:N_FORGET], non_member_scores(scores)
    return {f"{prefix}_auc": auc(members, non_members), f"{prefix}_tpr1": tpr_at(members, non_members, 0.01),
            f"{prefix}_tpr5": tpr_at(members, non_members, 0.05)}


# The tests -------------------------------------------------------------------------------------------------------

@pytest.fixture
def fixed_shadows():
    splits = class_wise_splits()
    pool = N_FORGET + len(UNSEEN_LABELS)
    member = memberships(pool)
    phi = synthetic_phi(0, member)
    rng = np.random.default_rng(0)  # the model under attack: members more confident than non-members
    target = np.concatenate([rng.normal(1.2, 1.0, N_FORGET), rng.normal(-0.3, 0.8, pool - N_FORGET)])
    return splits, shadows.ShadowSet(phi, member, N_FORGET, 12.5, 4096, 0), target


def test_lira_on_a_class_wise_split_with_unseen_is_the_hand_computation(fixed_shadows):
    splits, shadow_set, target = fixed_shadows
    online, offline = by_hand(target.tolist(), shadow_set.phi.tolist(), shadow_set.member.tolist())
    members, non_members = online[:N_FORGET], non_member_scores(online)
    # the data reach the 5 % boundary: one false positive allowed, and it changes the answer
    assert tpr_at(members, non_members, 0.05) != tpr_at(members, non_members, 0.05, strict=True)
    got = lira.lira_metrics(target, splits, shadow_set)
    expected = {**expected_metrics("lira", online), **expected_metrics("lira_offline", offline),
                "lira_shadows": 16.0, "lira_shadow_seconds": 12.5, "lira_shadow_bytes": 4096.0}
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    examples = {}
    lira.lira_metrics(target, splits, shadow_set, examples)
    assert np.allclose(examples["lira_members"], members, atol=1e-12)
    assert np.allclose(examples["lira_nonmembers"], non_members, atol=1e-12)


def test_below_64_shadows_the_variance_is_global_and_from_64_per_example():
    member = memberships(40)
    fits = lira.fit_gaussians(synthetic_phi(3, member), member)
    assert np.all(fits.std_in == fits.std_in[0]) and np.all(fits.std_out == fits.std_out[0])
    many = np.array([shadows.shadow_members(40, 0, k) for k in range(64)])
    phi = synthetic_phi(3, many)
    fits = lira.fit_gaussians(phi, many)
    j = 5
    values = phi[many[:, j], j]
    assert fits.std_in[j] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    assert len(set(fits.std_in.round(9))) > 1


def test_ulira_calibrates_in_on_the_unlearned_shadows_by_hand(fixed_shadows):
    splits, shadow_set, target = fixed_shadows
    unlearned = synthetic_phi(7, shadow_set.member) - 1.0
    calibration = np.where(shadow_set.member, unlearned, shadow_set.phi)
    online, _ = by_hand(target.tolist(), calibration.tolist(), shadow_set.member.tolist())
    examples = {}
    got = ulira.ulira_metrics(target, unlearned, shadow_set, lira.nonmember_mask(splits), examples)
    for name, value in expected_metrics("ulira", online).items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    assert np.allclose(examples["ulira_members"], online[:N_FORGET], atol=1e-12)
    assert np.allclose(examples["ulira_nonmembers"], non_member_scores(online), atol=1e-12)


def test_the_originals_ulira_is_its_lira_without_training(fixed_shadows, monkeypatch, tmp_path):
    """Unlearning with `original` leaves each shadow as it was, so U-LiRA's calibration is LiRA's: on K untrained
    toy shadows, the two attacks give the same numbers, and each shadow is unlearned once."""
    splits = fixed_shadows[0]
    models = [toy_model(3, width=4, seed=100 + k) for k in range(K)]
    handed = []

    def shadow_model(plan, splits_, recipe, backbone, seed, index, retain_only=False):
        handed.append(index)
        return models[index], {"train_seconds": 0.0}, True
    monkeypatch.setattr(ulira, "shadow_model", shadow_model)
    pool = shadows.attack_pool(splits)
    device = torch.device("cpu")
    phi = np.array([shadows.confidence_logits(m, pool, splits.kind, splits.preprocess, device) for m in models])
    shadow_set = shadows.ShadowSet(phi, memberships(len(pool)), N_FORGET, 0.0, 0, 0)
    target_phi = lira.pool_phi(toy_model(3, width=4, seed=7), splits, device)
    plan = RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=tmp_path, tracking_uri="", cache_dir=tmp_path,
                   quiet=True, attacks=("lira", "ulira"), shadows=K)
    got = ulira.ulira_scores(target_phi, MethodSpec("original"), None, plan, splits, TOY_RECIPE, "toy", 0, shadow_set)
    plain = lira.lira_metrics(target_phi, splits, shadow_set)
    for name in ("auc", "tpr1", "tpr5"):
        assert got[f"ulira_{name}"] == plain[f"lira_{name}"]
    assert sorted(handed) == list(range(K)) and got["ulira_runs"] == K


@pytest.mark.parametrize("attack", ["", "lira", "ulira"])
def test_a_seeds_attack_scores_each_cell_against_the_runs_shadow_count(attack, monkeypatch, tmp_path):
    """executors.seed_attack: nothing without --attack; LiRA from `--shadows` shadows of the seed; under ulira also
    U-LiRA with the cell's method; the per-example scores logged are the forget set and the forgotten class's
    unseen images."""
    import mlflow

    from mubench.run import executors
    splits = class_wise_splits()
    pool = shadows.attack_pool(splits)
    device = torch.device("cpu")
    models = [toy_model(3, width=4, seed=100 + k) for k in range(K)]
    phi = np.array([shadows.confidence_logits(m, pool, splits.kind, splits.preprocess, device) for m in models])
    asked = []

    def shadow_set(plan, splits_, recipe, backbone, seed, count, indices=None):
        asked.append((backbone, seed, count))
        return shadows.ShadowSet(phi[:count], memberships(len(pool))[:count], N_FORGET, 0.0, 0, 0)
    monkeypatch.setattr(shadows, "shadow_set", shadow_set)
    monkeypatch.setattr(ulira, "shadow_model", lambda plan, s, r, b, seed, index, retain_only=False:
                        (models[index], {"train_seconds": 0.0}, True))
    plan = RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=tmp_path, tracking_uri="", cache_dir=tmp_path,
                   quiet=True, attacks=resolve_attacks(attack), shadows=K)
    refs = References(None, None, {"key": "o"}, {"train_seconds": 2.0})
    scorer = executors.seed_attack(SeedSetup(plan, splits, TOY_RECIPE, "toy", 3), refs)
    if not attack:
        assert scorer is None and asked == []
        return
    target = toy_model(3, width=4, seed=7)
    from mubench.core.tracking import open_store
    open_store(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path)  # not mlflow.set_tracking_uri: it exports the URI
    with mlflow.start_run() as run:
        scores = scorer(target, MethodSpec("original"), MethodSpec("original").config_for("toy"))
    assert asked == [("toy", 3, K)]
    expected = lira.lira_metrics(lira.pool_phi(target, splits, device), splits,
                                 shadow_set(plan, splits, TOY_RECIPE, "toy", 3, K))
    assert {k: scores[k] for k in expected} == expected
    assert ("ulira_auc" in scores) == (attack == "ulira")
    if attack == "ulira":
        assert scores["ulira_auc"] == scores["lira_auc"] and scores["ulira_runs"] == K
        assert scores["ulira_cost"] == scores["ulira_seconds"] / 2.0  # over the seed's Retrain training time
    saved = np.load(mlflow.MlflowClient().download_artifacts(run.info.run_id, ATTACK_SCORES, str(tmp_path)))
    assert len(saved["lira_members"]) == N_FORGET and len(saved["lira_nonmembers"]) == UNSEEN_LABELS.count(FORGOTTEN)


def test_an_example_without_shadows_on_one_side_takes_that_sides_mean_over_examples():
    """Example 0 is IN for one shadow only (its own mean is that one value); example 1 is never IN (it takes the
    mean of every IN entry); example 2 is never OUT."""
    member = np.array([[1, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 1]], bool)
    phi = np.array([[7.0, 1.0, 2.0], [1.0, 2.0, 4.0], [3.0, 3.0, 6.0], [2.0, 4.0, 8.0]])
    fits = lira.fit_gaussians(phi, member)
    in_entries = phi[member]
    assert in_entries.mean() != 7.0  # so example 0's own mean cannot pass for the fallback
    assert fits.mean_in.tolist() == pytest.approx([7.0, in_entries.mean(), 5.0])
    out_entries = phi[~member]
    assert fits.mean_out.tolist() == pytest.approx([2.0, 2.5, out_entries.mean()])


def test_from_64_shadows_an_example_with_one_in_shadow_takes_the_pooled_deviation():
    """Per-example variances: examples 0 and 2 have their own (ddof 1); example 1, IN for one shadow only, takes the
    pooled deviation: squares about each example's own mean over (IN entries − examples with any), here 6 − 3."""
    member = np.array([[1, 0, 1], [1, 0, 1], [0, 1, 1]], bool)
    phi = np.array([[1.0, 9.0, 2.0], [3.0, 9.0, 4.0], [0.0, 5.0, 9.0]])
    fits = lira.fit_gaussians(phi, member, per_example_variance=True)
    squares = (1 - 2) ** 2 + (3 - 2) ** 2 + (2 - 5) ** 2 + (4 - 5) ** 2 + (9 - 5) ** 2  # ex 1's own square is 0
    assert fits.std_in[0] == pytest.approx(np.std([1.0, 3.0], ddof=1))
    assert fits.std_in[2] == pytest.approx(np.std([2.0, 4.0, 9.0], ddof=1))
    assert fits.std_in[1] == pytest.approx(np.sqrt(squares / 3))


def test_shadow_phi_is_kept_in_double_precision(tmp_path, monkeypatch):
    """φ of a confident example is large (it does not saturate): the cache entry keeps it to float64."""
    splits = class_wise_splits()
    pool = shadows.attack_pool(splits)
    exact = np.linspace(0, 1, len(pool)) * 37.123456789012345
    monkeypatch.setattr(shadows, "train_shadow", lambda splits_, recipe, make_model, device, seed, index, *a, **k:
                        (exact + index, shadows.shadow_members(len(pool), seed, index), 0.5))
    plan = RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=tmp_path, tracking_uri="", cache_dir=tmp_path,
                   quiet=True, attacks=("lira",), shadows=2)
    monkeypatch.setattr(shadows, "shadow_fields", lambda plan_, splits_, recipe, backbone, seed, index, part="":
                        {"index": index, "part": part})
    for attempt in range(2):  # trained, then read back from the cache
        got = shadows.shadow_set(plan, splits, TOY_RECIPE, "toy", 0, 2)
        assert got.phi.dtype == np.float64 and np.array_equal(got.phi, np.array([exact, exact + 1]))
        assert np.array_equal(got.member, memberships(len(pool))[:2]) and got.trained == (2 if attempt == 0 else 0)
        assert got.train_seconds == 1.0 and got.n_forget == N_FORGET


def test_each_shadow_is_unlearned_from_the_cells_seed_whatever_ran_before(fixed_shadows, monkeypatch, tmp_path):
    """A method that draws from torch's global generator gives the same unlearned shadows on every call: each
    shadow's unlearning starts from the cell's seed, as the cell's own unlearning does."""
    from mubench.unlearn.api import METHODS
    splits = fixed_shadows[0]
    models = [toy_model(3, width=4, seed=100 + k) for k in range(4)]
    monkeypatch.setattr(ulira, "shadow_model", lambda plan, s, r, b, seed, index, retain_only=False:
                        (__import__("copy").deepcopy(models[index]), {"train_seconds": 0.0}, True))

    def noisy(self, model, data, ctx):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        return model
    monkeypatch.setattr(METHODS.get("original"), "unlearn", noisy)
    pool = shadows.attack_pool(splits)
    member = memberships(len(pool))[:4]
    shadow_set = shadows.ShadowSet(np.zeros(member.shape), member, N_FORGET, 0.0, 0, 0)
    plan = RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=tmp_path, tracking_uri="", cache_dir=tmp_path,
                   quiet=True, attacks=("lira", "ulira"), shadows=4)
    first, _ = ulira.unlearned_shadow_phi(plan, MethodSpec("original"), None, splits, TOY_RECIPE, "toy", 5, shadow_set)
    torch.randn(100)  # whatever ran in between
    second, _ = ulira.unlearned_shadow_phi(plan, MethodSpec("original"), None, splits, TOY_RECIPE, "toy", 5, shadow_set)
    other_seed, _ = ulira.unlearned_shadow_phi(plan, MethodSpec("original"), None, splits, TOY_RECIPE, "toy", 6,
                                               shadow_set)
    assert np.array_equal(first, second) and not np.array_equal(first, other_seed)


def test_ulira_charges_each_shadow_retrains_training_time_as_a_cell_charges_retrains(fixed_shadows, monkeypatch,
                                                                                      tmp_path):
    """Retrain unlearns a shadow by borrowing that shadow's retrain-only model: U-LiRA's cost is the K borrowed
    training times (here 2.5 s each) plus the near-zero time of handing them over."""
    splits = fixed_shadows[0]
    asked = []

    def shadow_model(plan, splits_, recipe, backbone, seed, index, retain_only=False):
        asked.append((index, retain_only))
        return toy_model(3, width=4, seed=index), {"train_seconds": 2.5 if retain_only else 99.0}, True
    monkeypatch.setattr(ulira, "shadow_model", shadow_model)
    pool = shadows.attack_pool(splits)
    shadow_set = shadows.ShadowSet(np.zeros((K, len(pool))), memberships(len(pool)), N_FORGET, 0.0, 0, 0)
    plan = RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=tmp_path, tracking_uri="", cache_dir=tmp_path,
                   quiet=True, attacks=("lira", "ulira"), shadows=K)
    target_phi = lira.pool_phi(toy_model(3, width=4, seed=7), splits, torch.device("cpu"))
    got = ulira.ulira_scores(target_phi, MethodSpec("retrain"), None, plan, splits, TOY_RECIPE, "toy", 0, shadow_set)
    assert K * 2.5 <= got["ulira_seconds"] < K * 2.5 + 5 and got["ulira_runs"] == K
    assert sorted(asked) == sorted([(k, False) for k in range(K)] + [(k, True) for k in range(K)])
