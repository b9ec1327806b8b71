"""The two cheapest games, played through the harness onto a board: logits multiplied by 8 (the paper's attack reads
a low FS, the scale-free one still sees the Original's signal) must be flagged ‡; a constant prediction (FS near 0,
NoMUS above the Original's) must be marked collapsed; neither may share the leader's 1= group."""
import mlflow
import pytest

from adversaries import ADVERSARIES
from mubench.boards.leaderboard import latest_cells, render_board
from mubench.core.store import BoardKey
from mubench.harness.plan import CellJob, MethodSpec, RunSummary, SeedSetup
from mubench.kits.method_kit import TOY_RECIPE, toy_cell
from mubench.run.cell import run_logged_cell
from mubench.unlearn.api import METHODS
from test_board_render import parse_tables
from test_harness_wiring import references_of, store  # noqa: F401 (a fixture)

SEEDS = (0, 1, 2)


@pytest.fixture
def board(store, monkeypatch):  # noqa: F811
    """A board of toy cells (the method kit's task, memorisable sample by sample, so the Original carries a
    membership signal to hide), the adversaries registered for this test only."""
    for name, cls in ADVERSARIES.items():
        monkeypatch.setitem(METHODS._entries, name, cls)
    with mlflow.start_run() as parent:
        summary = RunSummary(parent.info.run_id)
        for seed in SEEDS:
            cell = toy_cell(seed=seed)
            setup = SeedSetup(store, cell.splits, TOY_RECIPE, "toy", seed)
            for name in ("original", "retrain", "finetune", *ADVERSARIES):
                run_logged_cell(setup, references_of(cell), CellJob.of(MethodSpec(name), name, "toy", "toy", seed),
                                summary)
    assert summary.failures == []
    cells = latest_cells(store.tracking_uri)
    return cells, render_board(BoardKey("toy", "toy", "default"), cells)


def test_scaled_logits_are_flagged_and_a_constant_prediction_never_shares_the_lead(board):
    cells, text = board
    means = cells.groupby("label")[["fs", "nomus", "test_acc"]].mean()
    # the games work on the raw scores: ×8 lowers the paper's FS without touching accuracy, and the constant
    # prediction outscores the Original on NoMUS
    assert means.loc["x8-logits", "fs"] < means.loc["original", "fs"] - 0.2
    assert means.loc["x8-logits", "test_acc"] == pytest.approx(means.loc["original", "test_acc"])
    assert means.loc["constant", "nomus"] > means.loc["original", "nomus"]
    rows = {row[1]: row for row in parse_tables(text)[0][1:]}
    assert "‡" in rows["x8-logits"][5] and "‡" not in rows["original (reference)"][5]
    # below every row whose scores can be read: the ‡ row next to last, the collapsed one last
    assert [int(rows[name][0]) for name in ("x8-logits", "constant (collapsed)")] == [len(rows) - 1, len(rows)]
    assert "the paper attack is blind here" in text and "A row marked collapsed" in text
