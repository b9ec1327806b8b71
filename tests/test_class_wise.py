"""Class-wise scoring as the field does it (SalUn's protocol): UA, RA, TA, MIA-efficacy, and boards ranked by the gap
to Retrain, where a method that forgets nothing no longer wins by generalising to the forgotten class."""
import dataclasses

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from mubench.attacks.efficacy import efficacy_sets
from mubench.boards.leaderboard import CLASS_WISE_HEADERS, CLASS_WISE_RANKING, latest_cells, render_board, summarise
from mubench.core.store import BoardKey
from mubench.data.scenarios import apply_scenario, parse_scenario
from mubench.harness.plan import CellJob, MethodSpec, RunSummary, SeedSetup
from mubench.harness.references import References
from mubench.kits.method_kit import TOY_RECIPE, single_thread, toy_model, toy_splits
from mubench.run.cell import run_logged_cell
from mubench.scores.metrics import mia_efficacy
from mubench.train.training import train_reference
from test_board_render import cells_of, parse_tables
from test_harness_wiring import store  # noqa: F401 (a fixture)

KEY = BoardKey("digits", "resnet18", "default", scenario="class:3")


def test_mia_efficacy_is_the_share_of_targets_judged_unseen():
    """Members sit near confidence 1, non-members near 0.25: an SVC between the two clusters judges each target by
    the cluster it sits in. Three of the four targets sit among the non-members, so 3/4 are judged unseen (the wrong
    direction, the share judged members, would read 1/4)."""
    members = np.array([0.99, 0.995, 1.0, 0.98, 0.999, 0.985])
    nonmembers = np.array([0.2, 0.25, 0.3, 0.22, 0.28, 0.24])
    assert mia_efficacy(members, nonmembers, np.array([0.99, 0.26, 0.21, 0.29])) == 0.75
    assert mia_efficacy(members, nonmembers, np.array([0.995, 0.98])) == 0.0
    assert mia_efficacy(members, nonmembers, np.array([0.23, 0.27])) == 1.0


def test_efficacy_reads_members_from_retain_and_non_members_from_test_without_the_forgotten_class():
    splits = apply_scenario(toy_splits(), parse_scenario("class:1"))
    losses = {"retain": np.arange(len(splits.retain), dtype=float) / 100, "forget": np.full(len(splits.forget), 3.0),
              "test": np.arange(len(splits.test), dtype=float) / 10}
    members, nonmembers, targets = efficacy_sets(losses, splits)
    kept = (splits.test.labels != 1).numpy()
    assert np.allclose(nonmembers, np.exp(-losses["test"][kept]))  # the forgotten class's test images are not in it
    assert len(members) == kept.sum() and np.allclose(members, np.exp(-losses["retain"][: kept.sum()]))
    assert np.allclose(targets, np.exp(-3.0))


def class_wise_board() -> pd.DataFrame:
    """The forgotten class memorised by the Original. A do-nothing method keeps it (forget acc 1) and, since the
    model generalises to the class's held-out images, reads the paper's FS near 0: the highest NoMUS. A forgetter
    drives forget acc to Retrain's ~0 at a small cost in utility."""
    return pd.DataFrame(cells_of({
        "retrain": {"forget_acc": (0.0, 0.0, 0.01), "retain_acc": (1.0, 1.0, 1.0), "test_acc": (0.95, 0.94, 0.95),
                    "mia_efficacy": (1.0, 0.98, 0.99), "fs": (0.7, 0.65, 0.72), "nomus": (0.63, 0.65, 0.62)},
        "original": {"forget_acc": (1.0, 1.0, 1.0), "retain_acc": (1.0, 1.0, 1.0), "test_acc": (0.96, 0.95, 0.96),
                     "mia_efficacy": (0.0, 0.02, 0.0), "fs": (0.02, 0.05, 0.0), "nomus": (0.97, 0.95, 0.98)},
        "finetune": {"forget_acc": (1.0, 0.99, 1.0), "retain_acc": (1.0, 1.0, 1.0), "test_acc": (0.95, 0.95, 0.96),
                     "mia_efficacy": (0.01, 0.03, 0.0), "fs": (0.03, 0.0, 0.04), "nomus": (0.96, 0.97, 0.96)},
        "neggrad": {"forget_acc": (0.02, 0.03, 0.03), "retain_acc": (0.97, 0.97, 0.97), "test_acc": (0.91, 0.90, 0.91),
                    "mia_efficacy": (0.95, 0.93, 0.94), "fs": (0.6, 0.62, 0.58), "nomus": (0.65, 0.645, 0.67)}}))


def test_a_class_wise_board_ranks_by_the_gap_to_retrain_not_by_nomus():
    cells = class_wise_board()
    by_nomus = summarise(cells)
    assert list(by_nomus["label"])[:2] == ["original", "finetune"]  # the inversion the gap ranking removes
    by_gap = summarise(cells, gap_metrics=("forget_acc", "retain_acc", "test_acc", "mia_efficacy"), by_gap=True)
    assert list(by_gap["label"]) == ["retrain", "neggrad", "finetune", "original"]
    retrain = by_gap.set_index("label").loc["retrain"]
    assert retrain["gap"] == 0 and retrain["per_seed_gap"] == {0: 0.0, 1: 0.0, 2: 0.0}
    # seed 0 of neggrad: (|0.02 - 0| + |0.97 - 1| + |0.91 - 0.95| + |0.95 - 1|) / 4
    assert by_gap.set_index("label").loc["neggrad", "per_seed_gap"][0] == pytest.approx((0.02 + 0.03 + 0.04 + 0.05) / 4)
    board = render_board(KEY, cells)
    table = parse_tables(board)[0]
    assert table[0][2:8] == list(CLASS_WISE_HEADERS)
    ranked = [(row[0], row[1]) for row in table[1:]]
    assert ranked == [("1", "retrain (reference)"), ("2", "neggrad"), ("3", "finetune"), ("4", "original (reference)")]
    assert CLASS_WISE_RANKING in board and "leader's gap to Retrain minus the row's" in board
    assert table[1][2:4] == ["0.997", "1.000"]  # UA = 1 − forget acc, RA
    # MIA-efficacy 0, .02, 0 against 1, .98, .99: the board's own attack tells the references apart
    assert "MIA-efficacy does, and the paired test separates Original and Retrain on it" in board


def test_a_random_forgetting_board_is_still_ranked_by_nomus():
    cells = class_wise_board()
    board = render_board(BoardKey("digits", "resnet18", "default"), cells)
    assert [row[1] for row in parse_tables(board)[0][1:]][:2] == ["original (reference)", "finetune"]
    assert "Ranked by NoMUS" in board and "UA" not in parse_tables(board)[0][0]


def trained_class_wise(forgotten: int = 0):
    splits = dataclasses.replace(apply_scenario(toy_splits(), parse_scenario(f"class:{forgotten}")), task="digits")
    models = {}
    with single_thread():
        for role, data in (("original", splits.retain.concat(splits.forget)), ("retrain", splits.retain)):
            models[role] = toy_model(splits.num_outputs)
            train_reference(models[role], data, splits.kind, splits.preprocess, TOY_RECIPE, torch.device("cpu"), 0)
    return splits, References(models["original"], models["retrain"], {"key": "o"}, {"train_seconds": 1.0})


def test_every_class_wise_cell_is_scored_by_mia_efficacy_and_retrain_reads_the_forget_class_unseen(store):  # noqa: F811
    splits, refs = trained_class_wise()
    setup = SeedSetup(store, splits, TOY_RECIPE, "toy", 0)
    with mlflow.start_run() as parent:
        summary = RunSummary(parent.info.run_id)
        for name in ("original", "retrain"):
            run_logged_cell(setup, refs, CellJob.of(MethodSpec(name), name, splits.task, "toy", 0), summary)
    assert summary.failures == []
    cells = latest_cells(store.tracking_uri).set_index("label")
    # Retrain never saw the class: its true-class probability there is low, so most of the forget set looks unseen
    assert cells.loc["retrain", "mia_efficacy"] > 0.8 > 0.2 > cells.loc["original", "mia_efficacy"]
    assert cells.loc["retrain", "forget_acc"] < 0.2 < 0.9 < cells.loc["original", "forget_acc"]
