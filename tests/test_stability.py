"""Verdicts that survive a change of seeds: the tie rule under many comparisons, and the board's stability estimate."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mubench.boards.leaderboard import paired_separated, rank_labels, render_board, tied_with_leader
from mubench.boards.stability import Stability, kendall_tau, score_matrix


def simulated_board(rng, means, noise=0.01, seeds=3, seed_effect=0.05) -> list[dict[int, float]]:
    """Per-seed scores of rows with the given true means, ordered as a board orders them (best mean first)."""
    scores = np.asarray(means)[:, None] + noise * rng.standard_normal((len(means), seeds)) \
        + seed_effect * rng.standard_normal((1, seeds))
    order = np.argsort(-scores.mean(axis=1))
    return [dict(enumerate(scores[i])) for i in order]


# The tie rule under many comparisons --------------------------------------------------------------------------------

def test_fourteen_rows_equal_to_the_leader_separate_none_at_the_nominal_rate():
    """15 rows with one true score, 3 seeds: the leader is the best of them by chance. Boards where some row is
    separated from it must stay near 5 % (the family-wise rate): 1,000 boards, binomial sd ≈ 0.007 at 5 %. Here
    0.014 do; Holm over the 14 leader comparisons alone lets 0.098 through (the leader is the best by chance), and each
    row tested alone 0.695."""
    rng = np.random.default_rng(0)
    boards = [simulated_board(rng, np.zeros(15)) for _ in range(1000)]
    any_separated = np.mean([not all(tied_with_leader(rows)[1:]) for rows in boards])
    assert any_separated <= 0.07
    # what the rule must not be: each row tested alone at 95 % separates some row on most such boards
    alone = np.mean([any(paired_separated(rows[0], row) for row in rows[1:]) for rows in boards])
    assert alone > 0.5


def test_holm_counts_every_pair_of_the_board():
    """Leader a, b with differences .10, .13, .07 (t = .1 / (.03/√3) = 5.77, p ≈ .029 with 2 df), c far below.
    Alone, b is separated (p < .05). With c, the three rows make 3 pairs: c's tiny p-value passes .05/3, then b's
    p must pass .05/2 = .025, which .029 does not, so b is tied and c keeps its place below it."""
    a, b = {0: 0.8, 1: 0.8, 2: 0.8}, {0: 0.7, 1: 0.67, 2: 0.73}
    c = {0: 0.3, 1: 0.31, 2: 0.29}
    p_b = 2 * stats.t.sf(0.1 / (0.03 / math.sqrt(3)), 2)
    assert 0.025 < p_b < 0.05
    assert rank_labels([a, b]) == ["1", "2"]
    assert rank_labels([a, b, c]) == ["1=", "1=", "3"]
    assert tied_with_leader([a, b, c]) == [True, True, False]


def test_a_clear_gap_is_still_separated_under_the_correction():
    """Differences .30, .31, .29 (t = 52, p ≈ .0004) pass even the first Holm threshold of 15 rows (.05/105)."""
    rng = np.random.default_rng(1)
    rows = simulated_board(rng, np.r_[np.zeros(14), -0.3], noise=0.002, seeds=6)
    labels = rank_labels(rows)
    assert labels[-1] == "15" and labels[0] == "1="


# The stability estimate ---------------------------------------------------------------------------------------------

def test_kendall_tau_known_answers():
    order = np.array([[1.0, 2.0, 3.0]])
    assert kendall_tau(order, order)[0] == 1
    assert kendall_tau(order, order[:, ::-1])[0] == -1
    assert kendall_tau(order, np.array([[2.0, 1.0, 3.0]]))[0] == pytest.approx(1 / 3)  # one of three pairs swapped


def test_rows_far_apart_are_stable_from_one_seed():
    rng = np.random.default_rng(2)
    estimate = Stability(simulated_board(rng, np.arange(10) * 0.1, noise=0.001))
    assert estimate.tau(3) > 0.99
    assert estimate.seeds_for() == 1


def test_a_seed_effect_does_not_count_as_noise():
    """Every row of a seed shifted alike cannot change that seed's order: the estimate must not move. Counting the
    shift as row noise (no centring per seed) would make these well-separated rows look unstable."""
    rng = np.random.default_rng(3)
    rows = simulated_board(rng, np.arange(8) * 0.02, noise=0.005, seed_effect=0.0)
    shifted = [{seed: value + 0.5 * seed for seed, value in row.items()} for row in rows]
    assert Stability(shifted).tau(3) == pytest.approx(Stability(rows).tau(3))
    assert Stability(rows).tau(3) > 0.8


@pytest.mark.parametrize("spread", [0.0, 0.01, 0.03])
def test_the_estimate_matches_what_disjoint_seed_sets_show(spread):
    """Over 40 pilot boards of 3 seeds, the mean estimated τ at 3 seeds is within 0.12 of the τ actually seen between
    two independent 3-seed boards of the same rows (it leans high by about 0.1 on rows that differ only by noise).
    The plug-in estimate (observed means taken as true) overstates τ there by about 0.4 (0.40 against a truth of
    0.00), and by 0.13 at spread 0.01."""
    rng = np.random.default_rng(4)
    means = rng.standard_normal(15) * spread
    noise = 0.01 * rng.uniform(0.5, 2.0, 15)
    truth = np.mean([kendall_tau(*(means + noise * rng.standard_normal((2, 1, 15)) / math.sqrt(3)))[0]
                     for _ in range(3000)])
    estimates = []
    for _ in range(40):
        scores = means[:, None] + noise[:, None] * rng.standard_normal((15, 3))
        estimates.append(Stability([dict(enumerate(row)) for row in scores], draws=400).tau(3))
    assert abs(np.mean(estimates) - truth) < 0.12


def test_too_few_rows_or_seeds_give_no_estimate():
    assert score_matrix([{0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}]) is None  # two rows: no order to speak of
    assert score_matrix([{0: 1.0}, {0: 2.0}, {0: 3.0}]) is None  # one seed: no spread
    assert score_matrix([{0: 1.0, 1: 1.0}, {2: 1.0, 3: 1.0}, {0: 1.0, 2: 1.0}]) is None  # no seed common to all
    assert math.isnan(Stability([{0: 1.0}]).tau(3)) and Stability([{0: 1.0}]).seeds_for() is None


def board_cells(rows: list[dict[int, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"status": "FINISHED", "label": f"m{i:02d}", "method": f"m{i:02d}", "seed": str(seed),
                          "command": "", "split_hash": "0" * 64, "error": None, "nomus": value, "test_acc": 0.9,
                          "fs": 0.0, "base": f"m{i:02d}", "variant": "", "threads": "1"}
                         for i, row in enumerate(rows) for seed, value in row.items()])


def stability_line(board: str) -> str:
    return next(line for line in board.splitlines() if line.startswith("Stability: "))


def test_the_board_says_when_its_order_is_not_stable():
    rng = np.random.default_rng(5)
    noisy = render_board(("digits", "resnet18", "default"), board_cells(simulated_board(rng, np.zeros(10))))
    assert "this order is not stable" in stability_line(noisy)
    clear = render_board(("digits", "resnet18", "default"),
                         board_cells(simulated_board(rng, np.arange(10) * 0.1, noise=0.001)))
    line = stability_line(clear)
    assert "about 1 seed would reach" in line and "not stable" not in line
