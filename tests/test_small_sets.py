"""Nothing crashes on size: an attack a cell's sizes leave undefined is recorded not available with its reason, the
rest of the cell is scored and FINISHED, the board says n/a and why, and a run says so before any training."""
import dataclasses
import logging

import mlflow
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score

from mubench.attacks.population import population_unavailable
from mubench.boards.leaderboard import latest_cells, render_board
from mubench.core.store import TAG, BoardKey
from mubench.harness.plan import CellJob, MethodSpec, RunSummary, SeedSetup
from mubench.kits.method_kit import TOY_RECIPE, toy_cell
from mubench.run import grid
from mubench.run.cell import run_logged_cell
from mubench.scores.metrics import MIA_MIN_PER_SIDE, mia_unavailable
from test_harness_wiring import references_of, store  # noqa: F401 (a fixture)


def notebook_split_runs(per_side: int) -> bool:
    """Whether the notebooks' 10-split, 10 % stratified CV of a logistic regression runs on `per_side` of each."""
    x = np.r_[np.zeros(per_side), np.ones(per_side)].reshape(-1, 1) + np.linspace(0, 0.1, 2 * per_side)[:, None]
    y = np.r_[np.ones(per_side), np.zeros(per_side)]
    try:
        cross_val_score(LogisticRegression(), x, y, cv=StratifiedShuffleSplit(10, test_size=0.1, random_state=0))
    except ValueError:
        return False
    return True


def test_the_smallest_defined_mia_is_where_scikit_learn_can_split():
    assert not notebook_split_runs(MIA_MIN_PER_SIDE - 1) and notebook_split_runs(MIA_MIN_PER_SIDE)
    assert mia_unavailable(MIA_MIN_PER_SIDE, MIA_MIN_PER_SIDE) is None
    assert mia_unavailable(100, MIA_MIN_PER_SIDE) is None
    reason = mia_unavailable(40, 4)
    assert "40 forget and 4 held-out images" in reason and f"at least {MIA_MIN_PER_SIDE}" in reason


def few_held_out(splits, forgotten: int = 0, keep: int = 4):
    """`splits` with class `forgotten` forgotten and only `keep` of its test images left (the MIA's non-members)."""
    test = splits.test
    of_class = torch.nonzero(test.labels == forgotten).flatten()
    others = torch.nonzero(test.labels != forgotten).flatten()
    test = test.subset(torch.cat([of_class[:keep], others]).sort().values)
    return dataclasses.replace(splits, test=test, forgotten_classes=(forgotten,), scenario=f"class:{forgotten}")


def test_a_cell_whose_held_out_set_is_too_small_finishes_without_the_population_attacks(store):  # noqa: F811
    cell = toy_cell()
    splits = dataclasses.replace(few_held_out(cell.splits), task="digits")
    assert "4 held-out images" in population_unavailable(splits)
    setup = SeedSetup(store, splits, TOY_RECIPE, "toy", 0)
    with mlflow.start_run() as parent:
        summary = RunSummary(parent.info.run_id)
        for name in ("original", "retrain", "finetune"):
            run_logged_cell(setup, references_of(cell), CellJob.of(MethodSpec(name), name, splits.task, "toy", 0),
                            summary)
    assert summary.failures == []
    cells = latest_cells(store.tracking_uri)
    assert sorted(cells["status"]) == ["FINISHED"] * 3
    for row in cells.itertuples():
        assert set(row.unavailable) == {"mia", "scale-free"} and "4 held-out images" in row.unavailable["mia"]
        assert 0 <= row.test_acc <= 1 and 0 <= row.forgotten_test_acc <= 1
    runs = mlflow.MlflowClient().search_runs([parent.info.experiment_id], f"tags.`{TAG}kind` = 'cell'")
    assert all("fs" not in r.data.metrics and "nomus" not in r.data.metrics for r in runs)
    board = render_board(BoardKey("digits", "toy", "default", scenario="class:0"), cells)
    # ranked by the gap to Retrain, which needs no population attack; their columns read n/a
    retrain_row = next(line for line in board.splitlines() if line.startswith("| 1") and "retrain" in line)
    assert retrain_row.count("n/a") == 6  # MIA, FS, NoMUS, Δ NoMUS, and the two scale-free columns
    assert "Not available" in board and "- mia: " in board and "4 held-out images" in board


def test_a_run_says_so_before_any_training(monkeypatch, caplog, tmp_path, store):  # noqa: F811
    small = dataclasses.replace(few_held_out(toy_cell().splits), task="digits")
    events = []
    monkeypatch.setattr(grid, "load_task", lambda *args: (None, small, TOY_RECIPE))

    class Recording:
        def run(self, *args):
            events.append("training")
    monkeypatch.setattr(grid, "make_executor", lambda *args: Recording())
    monkeypatch.setattr(logging.getLogger("mubench.run.grid"), "warning",
                        lambda message, *args: events.append(message % args))
    plan = dataclasses.replace(store, tasks=["digits"], backbones=["toy"], scenarios=["class:0"],
                               methods=[MethodSpec("original")])
    grid.run(plan)
    assert len(events) == 2 and events[1] == "training"
    assert events[0].startswith("digits [class:0]: the population MIA needs at least 6") and "4 held-out" in events[0]
