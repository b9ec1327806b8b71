"""SSD's selection α carried over to the task's forget share (methods/ssd.py docstring).

At forget share s the overall importance holds the forget set's own (per image: []_D = s·[]_Df + (1 − s)·[]_Dr),
so the ratio []_Df / []_D never exceeds 1/s and the paper's fixed α = 10 selects nothing once s ≥ 10 %. The rule
α' = α / (1 + (α − 1)·s) tests []_Df > α·[]_Dr instead. Expected values are worked out by hand here.
"""
import random

import pytest
import torch
from torch import nn

from mubench.core.errors import MubenchError
from mubench.core.losses import TaskKind
from mubench.data.splits import Preprocess, Split
from mubench.kits.method_kit import single_thread
from mubench.methods.ssd import SSD, share_alpha
from mubench.unlearn.api import METHODS, DataSizes, UnlearnContext, UnlearnData


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield


# --- The rule's arithmetic ----------------------------------------------------------------------------------

@pytest.mark.parametrize("retain, forget, expected", [
    (1068, 189, 4.249),  # digits random: s = 0.1504, α' = 10 / 2.353
    (1129, 128, 5.218),  # digits class 3: s = 0.1018, α' = 10 / 1.917
    (1190, 210, 4.255),  # fer2013-mini: s = 0.15, α' = 10 / 2.35
])
def test_alpha_per_committed_task(retain, forget, expected):
    s = forget / (retain + forget)
    assert share_alpha(10.0, s) == pytest.approx(expected, abs=5e-4)
    assert SSD().selection_alpha(retain, forget) == pytest.approx(expected, abs=5e-4)
    assert share_alpha(10.0, s) < 1 / s < 10.0  # reachable at this share; the paper's α is not
    assert SSD(SSD.Config(alpha_rule="fixed")).selection_alpha(retain, forget) == 10.0


def test_alpha_is_the_papers_at_vanishing_share_and_always_reachable():
    assert share_alpha(10.0, 0.0) == 10.0
    assert share_alpha(10.0, 500 / 50_000) == pytest.approx(10 / 1.09)  # CIFAR-100 full class: 9.17
    for alpha in (1.5, 5.0, 10.0, 50.0, 100.0):
        for s in (0.001, 0.05, 0.15, 0.5, 0.9):
            assert share_alpha(alpha, s) < 1 / s


def test_selection_against_the_overall_importance_is_selection_against_the_rest():
    """[]_Df > α'·(s·[]_Df + (1 − s)·[]_Dr) ⟺ []_Df > α·[]_Dr, for any importances and share."""
    rng = random.Random(0)
    checked = 0
    for _ in range(2000):
        alpha, s = rng.uniform(1.0, 60.0), rng.uniform(0.001, 0.6)
        forget, rest = rng.expovariate(1.0), rng.expovariate(1.0) * rng.choice((0.0, 0.01, 0.1, 1.0))
        if abs(forget - alpha * rest) < 1e-6 * (1 + forget):
            continue  # a tie, decided by rounding
        overall = s * forget + (1 - s) * rest
        assert (forget > share_alpha(alpha, s) * overall) == (forget > alpha * rest), (alpha, s, forget, rest)
        checked += 1
    assert checked > 1900


# --- A toy at forget share 15 %: per-image importances (batch 1) -----------------------------------------------
# Three pixels; the third is lit only in forget images, so the weights reading it have zero retain importance:
# they are what SSD exists to dampen. Their forget-to-overall ratio is exactly 1/s = 6.67 < 10.

RETAIN, FORGET = 17, 3  # s = 3 / 20 = 0.15


def toy_data():
    rng = random.Random(1)

    def split(n, lit, role):
        rows = [[rng.randrange(40, 256), rng.randrange(40, 256), 255 if lit else 0] for _ in range(n)]
        images = torch.tensor(rows, dtype=torch.uint8).view(-1, 1, 1, 3)
        labels = torch.tensor([rng.randrange(2) for _ in range(n)])
        return Split(images, labels, tuple(f"{role}-{i}" for i in range(n)))
    return UnlearnData(split(RETAIN, False, "retain"), split(FORGET, True, "forget"), split(8, False, "val"),
                       TaskKind.MULTICLASS, 2, Preprocess((0.0,), (1.0,)), 4, torch.device("cpu"))


def toy_model():
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.3, 0.2], [-0.2, 0.4, -0.1]]))
        layer.bias.copy_(torch.tensor([0.1, -0.1]))
    return nn.Sequential(nn.Flatten(), layer)


def unlearn_toy(**fields):
    logged = {}
    ctx = UnlearnContext(torch.device("cpu"), 0, True, _monitor=lambda model: None, _retrained=lambda: None,
                         _log_metric=lambda name, value, step: logged.__setitem__(name, value))
    model = toy_model()
    before = model[1].weight.detach().clone()
    result = METHODS.get("ssd")(SSD.Config(batch_size=1, **fields)).unlearn(model, toy_data(), ctx)
    return before, result[1].weight.detach(), logged


def test_scaled_alpha_dampens_the_forget_only_weights_at_share_15_percent():
    before, after, logged = unlearn_toy()
    assert logged["ssd_alpha"] == pytest.approx(10 / (1 + 9 * 0.15))
    assert logged["ssd_dampened_share"] > 0
    # the third column: retain importance 0, overall = s·forget, so β = min(λ·s, 1) = 0.15 exactly
    assert after[:, 2].tolist() == pytest.approx((0.15 * before[:, 2]).tolist(), rel=1e-5)
    dampened = int((after != before).sum())
    assert logged["ssd_dampened_share"] == pytest.approx(dampened / 8)  # 6 weights + 2 biases


def test_the_papers_fixed_alpha_dampens_nothing_at_share_15_percent():
    """The wrong variant: α = 10 > 1/s = 6.67 leaves every weight as it was."""
    before, after, logged = unlearn_toy(alpha_rule="fixed")
    assert logged["ssd_alpha"] == 10.0
    assert logged["ssd_dampened_share"] == 0.0
    assert torch.equal(after, before)


def test_alpha_rule_choices_and_ablations():
    with pytest.raises(MubenchError, match="ssd.alpha_rule='share'.*forget-share, fixed"):
        SSD.Config(alpha_rule="share")
    for variant in SSD.ablations.values():
        SSD.Config(**variant)
    assert SSD.ablations["fixed-alpha"] == {"alpha_rule": "fixed"}


def test_no_optimiser_steps():
    assert SSD().derived_steps(DataSizes(1068, 189, 180, 10, 64)) == 0
