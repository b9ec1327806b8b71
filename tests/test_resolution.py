"""Each board states its resolution: the FS no signal reaches at its sizes, which FS values lie under it, and whether
the paired test separates Original from Retrain at all."""
import numpy as np
import pandas as pd
import pytest

from mubench.boards.leaderboard import render_board, resolution
from mubench.core.store import BoardKey
from mubench.scores.metrics import forgetting_score, mia_scores, no_signal_fs
from test_board_render import cells_of

KEY = BoardKey("digits", "resnet18", "default")


def test_the_no_signal_quantile_is_what_the_attack_reads_on_no_signal():
    """An independent null: the whole attack (mia_scores, balancing included) on members and non-members drawn
    from one distribution, other seeds, other sizes' balance: about 95 % of its FS values lie under the quantile."""
    floor = no_signal_fs(60, 90)
    rng = np.random.default_rng(123)
    null = [forgetting_score(mia_scores(rng.exponential(2.0, 60), rng.exponential(2.0, 90)).mia) for _ in range(60)]
    assert 0.85 <= np.mean(np.array(null) < floor) <= 1.0
    assert no_signal_fs(60, 90) == floor  # seeded


def test_the_floor_falls_with_size_and_a_real_signal_clears_it():
    assert no_signal_fs(30, 30) > no_signal_fs(120, 120) > no_signal_fs(480, 480)
    rng = np.random.default_rng(7)
    members, nonmembers = rng.exponential(0.4, 200), rng.exponential(1.0, 200)  # members fit better: a signal
    assert forgetting_score(mia_scores(members, nonmembers).mia) > no_signal_fs(200, 200)


def board_of(original: tuple, retrain: tuple, size: int = 60) -> pd.DataFrame:
    return pd.DataFrame(cells_of({"original": {"fs": original}, "retrain": {"fs": retrain},
                                  "finetune": {"fs": tuple(0.5 for _ in original)}},
                                 mia_members=size, mia_nonmembers=size))


@pytest.mark.parametrize("original, retrain, says", [
    ((0.50, 0.45, 0.55), (0.05, 0.02, 0.04), "Original and Retrain are separated by the paired test on FS, and the "
                                             "Original's FS is above the no-signal FS: the board can see forgetting."),
    ((0.10, 0.11, 0.12), (0.01, 0.02, 0.03), "separated by the paired test on FS, but the Original's mean FS (0.110) "
                                             "is under the no-signal FS"),
    ((0.06, 0.02, 0.09), (0.05, 0.03, 0.07), "**Original and Retrain are not separated by the paired test on FS: this "
                                             "board cannot rank forgetting on this task**"),
    ((0.50,), (0.05,), "fewer than two seeds with both"),
])
def test_a_board_says_whether_it_can_see_forgetting(original, retrain, says):
    cells = board_of(original, retrain)
    lines, floor = resolution(cells)
    assert floor == no_signal_fs(60, 60)
    assert lines[0].startswith(f"Resolution: with no signal, the paper's FS at this board's sizes (60 members, 60 "
                               f"non-members) stays under {floor:.3f}")
    assert says in lines[1]
    board = render_board(KEY, cells)
    assert lines[0] in board and says in board


def test_fs_under_the_floor_is_marked_and_boards_without_sizes_say_nothing():
    board = render_board(KEY, board_of((0.50, 0.45, 0.55), (0.05, 0.02, 0.04)))
    rows = {line.split("|")[2].strip(): line for line in board.splitlines() if line.startswith("| ")}
    assert "°" in rows["retrain (reference)"] and "°" not in rows["original (reference)"]
    bare = pd.DataFrame(cells_of({"original": {"fs": (0.5, 0.4)}, "retrain": {"fs": (0.1, 0.0)}}))
    assert resolution(bare)[0] == [] and "Resolution:" not in render_board(KEY, bare)


# Rows the cheap games produce ------------------------------------------------------------------------------------

def test_chance_is_what_a_constant_prediction_scores():
    import torch
    from mubench.core.losses import TaskKind
    from mubench.scores.metrics import at_chance, chance_accuracy
    assert chance_accuracy(torch.tensor([0, 1, 1, 2, 1, 0, 3, 1]), TaskKind.MULTICLASS) == 0.5
    assert chance_accuracy(torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]),
                           TaskKind.MULTILABEL) == (0.75 + 0.75) / 2
    # one-sided 95 % binomial noise above chance 0.25 on 100 images: 0.25 + 1.645 * 0.0433 = 0.321
    assert at_chance(0.135, 0.25, 100) and at_chance(0.32, 0.25, 100) and not at_chance(0.33, 0.25, 100)


def test_a_collapsed_row_ranks_below_the_rows_that_kept_their_accuracy_and_never_shares_the_lead():
    """The committed FER board's game: a model collapsed to chance has FS ≈ 0, so NoMUS ≈ ½(chance + 1) can top
    rows that kept their accuracy."""
    spec = {"original": {"test_acc": (0.60, 0.61, 0.59), "fs": (0.30, 0.32, 0.31), "nomus": (0.65, 0.645, 0.64)},
            "retrain": {"test_acc": (0.58, 0.57, 0.59), "fs": (0.02, 0.03, 0.01), "nomus": (0.78, 0.77, 0.79)},
            "kept": {"test_acc": (0.55, 0.56, 0.54), "fs": (0.05, 0.06, 0.04), "nomus": (0.75, 0.75, 0.75)},
            "unsir": {"test_acc": (0.15, 0.12, 0.14), "fs": (0.0, 0.0, 0.01), "nomus": (0.8, 0.81, 0.79)}}
    board = render_board(KEY, pd.DataFrame(cells_of(spec, chance_acc=0.25, test_count=200)))
    ranks = {line.split("|")[2].strip(): line.split("|")[1].strip() for line in board.splitlines()
             if line.startswith("| ") and not line.startswith("| #")}
    assert ranks["unsir (collapsed)"] == "4" and ranks["retrain (reference)"] in ("1", "1=")
    assert "ranks below every row that kept its accuracy" in board


def test_a_row_whose_paper_fs_sits_under_the_scale_free_one_is_flagged():
    spec = {"original": {"fs": (0.5, 0.5), "mia_logloss": (0.75, 0.75)},
            "retrain": {"fs": (0.02, 0.03), "mia_logloss": (0.51, 0.52)},
            "rescaled": {"fs": (0.0, 0.0), "mia_logloss": (0.75, 0.76)}}  # the logits × 8 game: same signal, FS 0
    board = render_board(KEY, pd.DataFrame(cells_of(spec, mia_members=60, mia_nonmembers=60)))
    rows = {line.split("|")[2].strip(): line for line in board.splitlines() if line.startswith("| ")}
    assert "‡" in rows["rescaled"] and "‡" not in rows["original (reference)"] and "‡" not in rows["retrain (reference)"]
    assert "the paper attack is blind here" in board


def test_a_board_whose_original_is_at_chance_says_it_is_no_verdict_and_ranks_nothing():
    """A smoke run's one-epoch references: the Original at chance, so finetune 'beating' Retrain means nothing."""
    spec = {"original": {"test_acc": (0.08, 0.09, 0.08), "fs": (0.02, 0.03, 0.01), "nomus": (0.53, 0.53, 0.535)},
            "retrain": {"test_acc": (0.09, 0.08, 0.10), "fs": (0.10, 0.12, 0.11), "nomus": (0.49, 0.48, 0.495)},
            "finetune": {"test_acc": (0.40, 0.42, 0.41), "fs": (0.01, 0.0, 0.02), "nomus": (0.70, 0.71, 0.70)}}
    cells = pd.DataFrame(cells_of(spec, chance_acc=0.1, test_count=300))
    board = render_board(BoardKey("digits", "resnet18", "smoke"), cells)
    ranks = [line.split("|")[1].strip() for line in board.splitlines()
             if line.startswith("| ") and not line.startswith("| #")]
    assert ranks[:3] == ["—", "—", "—"]
    assert "**Not a verdict: the Original reference is at chance (test acc 0.083, where a constant prediction " \
           "scores 0.100)" in board and "The smoke preset trains for one epoch" in board
    # the same rows with an Original that learnt: ranked, no banner
    cells.loc[cells["label"] == "original", "test_acc"] = 0.9
    ranked = render_board(BoardKey("digits", "resnet18", "smoke"), cells)
    assert "Not a verdict" not in ranked and "| 1 " in ranked
