"""What a board may show: one configuration per row, one board per head / weights / thread count, tables that a
GitHub-flavoured markdown renderer renders, and the headline metric wired to the right roles."""
import re
from pathlib import Path

import cmarkgfm
import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from cmarkgfm.cmark import Options
from mlflow.tracking import MlflowClient
from torch import nn

from test_metrics import scores_of
from mubench.scores import metrics
from mubench.data.splits import Preprocess, Split, Splits
from mubench.boards.leaderboard import latest_cells, render_all, render_board
from mubench.core.losses import TaskKind
from mubench.core.tracking import open_experiment
from mubench.core.store import EXPERIMENT, TAG

BOARDS = Path(__file__).resolve().parents[1] / "leaderboards"


# Tables a GFM renderer renders -------------------------------------------------------------------------------------

def gfm_tables(markdown: str) -> list[list[int]]:
    """Each table GitHub's renderer (cmark-gfm) finds: the number of cells in each of its rows."""
    html = cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)
    return [[len(re.findall(r"<t[hd][ >]", row)) for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
            for table in re.findall(r"<table>(.*?)</table>", html, re.S)]


def table_blocks(markdown: str) -> list[list[str]]:
    """The blocks of consecutive lines that start with a pipe: what the author meant as tables."""
    blocks, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    return blocks


def assert_tables_render(markdown: str) -> None:
    tables, blocks = gfm_tables(markdown), table_blocks(markdown)
    assert len(tables) == len(blocks) > 0, f"{len(blocks)} pipe blocks, {len(tables)} tables rendered"
    for rows, block in zip(tables, blocks):
        assert len(rows) == len(block) - 1  # every line but the delimiter row is a table row
        assert len(set(rows)) == 1, f"rows with different cell counts: {rows}"


def test_the_renderer_check_catches_an_unescaped_pipe():
    broken = "| a | FS (2·|MIA−0.5|) |\n|---|---|\n| 1 | 2 |\n"
    with pytest.raises(AssertionError):
        assert_tables_render(broken)


@pytest.mark.parametrize("board", sorted(BOARDS.glob("*.md")), ids=lambda p: p.name)
def test_every_committed_board_is_tables_that_github_renders(board):
    assert_tables_render(board.read_text())


def board_cells(rows: dict[str, list[float]], variants: dict[str, str] | None = None) -> pd.DataFrame:
    variants = variants or {}
    cells = []
    for label, values in rows.items():
        for seed, nomus in enumerate(values):
            cells.append({"status": "FINISHED", "label": label, "method": label.split("[")[0], "seed": str(seed),
                          "command": "mubench run --set 'a|b'", "split_hash": "0" * 64, "error": None,
                          "nomus": nomus, "test_acc": nomus, "fs": 0.1, "threads": "2",
                          "base": label.split("[")[0] if label in variants else label,
                          "variant": variants.get(label, "")})
    return pd.DataFrame(cells)


def test_a_board_with_an_ablation_and_a_pipe_in_a_label_renders_as_tables():
    cells = board_cells({"dlfd": [0.8, 0.81], "dlfd[no-ot]": [0.7, 0.72], "retrain": [0.9, 0.9],
                         "original": [0.6, 0.6], "weird|name": [0.5, 0.5]}, variants={"dlfd[no-ot]": "no-ot"})
    text = render_board(("digits", "resnet18", "default"), cells)
    assert "## Ablation: dlfd" in text
    assert_tables_render(text)
    assert len(gfm_tables(text)) == 2


# One configuration per row ----------------------------------------------------------------------------------------

class Store:
    """A store with hand-made cell runs, to test what the board picks from it."""

    def __init__(self, tmp_path: Path):
        self.uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        self.experiment = open_experiment(self.uri, tmp_path / "mlartifacts")
        self.client = MlflowClient(self.uri)

    def cell(self, label, seed, nomus, config="c1", head="linear", threads="2", status="FINISHED", **tags):
        method = label.split("[")[0]
        all_tags = {f"{TAG}kind": "cell", f"{TAG}label": label, f"{TAG}method": method, f"{TAG}base": label,
                    f"{TAG}variant": "", f"{TAG}task": "digits", f"{TAG}backbone": "resnet18",
                    f"{TAG}preset": "default", f"{TAG}head": head, f"{TAG}pretrained": "none",
                    f"{TAG}threads": threads, f"{TAG}seed": str(seed), f"{TAG}config_hash": config,
                    f"{TAG}split_hash": "0" * 64, f"{TAG}command": "mubench run",
                    **{f"{TAG}{k}": v for k, v in tags.items()}}
        run = self.client.create_run(self.experiment, tags=all_tags)
        for name, value in {"nomus": nomus, "test_acc": nomus, "fs": 0.0}.items():
            self.client.log_metric(run.info.run_id, name, value)
        self.client.set_terminated(run.info.run_id, status=status)


def rows(board_text: str) -> dict[str, list[str]]:
    out = {}
    for line in board_text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) > 5 and cells[0].rstrip("=").isdigit():
            out[cells[1]] = cells
    return out


def test_a_row_holds_one_configuration_and_a_seed_at_most_once(tmp_path):
    store = Store(tmp_path)
    for seed in (0, 1, 2):
        store.cell("finetune", seed, 0.7, config="old")
    store.cell("finetune", 0, 0.8, config="new")  # the method's defaults changed; only seed 0 reran
    store.cell("finetune", 0, 0.9, config="new")  # and again: the later run of the seed wins
    cells = latest_cells(store.uri)
    finetune = cells[cells["label"] == "finetune"]
    assert sorted(finetune["seed"]) == ["0"] and list(finetune["nomus"]) == [0.9]


def test_set_overrides_head_and_threads_never_share_a_row(tmp_path):
    store = Store(tmp_path)
    store.cell("finetune", 0, 0.7)
    store.cell("finetune[lr=0.01]", 0, 0.6, config="c2", base="finetune[lr=0.01]")
    store.cell("finetune", 0, 0.5, head="mlp")
    store.cell("finetune", 0, 0.4, threads="1")
    written = render_all(store.uri, tmp_path / "boards")
    names = sorted(path.name for path, _ in written.values())
    assert names == ["digits-resnet18-head-mlp.md", "digits-resnet18-threads-1.md", "digits-resnet18-threads-2.md"]
    two_threads = rows((tmp_path / "boards" / "digits-resnet18-threads-2.md").read_text())
    assert set(two_threads) == {"finetune", "finetune[lr=0.01]"}
    assert [r[6] for r in (two_threads["finetune"], two_threads["finetune[lr=0.01]"])] == ["0.700", "0.600"]
    assert set(rows((tmp_path / "boards" / "digits-resnet18-head-mlp.md").read_text())) == {"finetune"}


def test_killed_and_running_cells_are_not_on_the_board(tmp_path):
    store = Store(tmp_path)
    store.cell("finetune", 0, 0.7)
    store.cell("finetune", 1, 0.2, status="KILLED")
    store.cell("finetune", 2, 0.2, status="RUNNING")
    assert sorted(latest_cells(store.uri)["seed"]) == ["0"]


# The headline metric's wiring ---------------------------------------------------------------------------------------

ROLE_LOSS = {"retain": 0.05, "forget": 0.8, "val": 1.5, "test": 1.0, "unseen": 1.2}  # each role: [L, 2L)
WRONG_SHARE = {"retain": 0.0, "forget": 0.0, "val": 0.5, "test": 0.25, "unseen": 0.75}


CLASSES = 32  # > e^(largest loss), so the coded loss is reachable with class 0 on top


class LossPerRole(nn.Module):
    """Logits whose cross-entropy against label 0 is the loss coded in the image's first pixel, so every role has
    known per-sample losses; the second pixel marks the samples it predicts wrong (class 1 on top)."""

    def forward(self, x):
        loss, wrong = x[:, 0, 0, 0], x[:, 0, 0, 1] > 0.5
        # logits (a, 0, …, 0): CE(label 0) = log(1 + (K−1)·e^−a) = loss  →  a = log((K−1) / (e^loss − 1))
        top = torch.log((CLASSES - 1) / torch.expm1(loss))
        logits = torch.zeros(len(x), CLASSES)
        logits[:, 0] = top
        logits[wrong] = logits[wrong][:, [1, 0, *range(2, CLASSES)]]
        return logits


SIZES = {"retain": 20, "forget": 50, "val": 30, "test": 24, "unseen": 16}


def role_split(role: str) -> Split:
    """Images whose pixels code a loss in [L, 2L) and, for the first WRONG_SHARE of them, a wrong prediction;
    ×255 because preprocessing divides by 255 (mean 0, std 1)."""
    n = SIZES[role]
    losses = ROLE_LOSS[role] * (1 + np.random.RandomState(n).rand(n))
    images = torch.zeros(n, 1, 1, 2)
    images[:, 0, 0, 0] = torch.tensor(losses, dtype=torch.float32) * 255
    images[: int(round(n * WRONG_SHARE[role])), 0, 0, 1] = 255.0
    return Split(images, torch.zeros(n, dtype=torch.long), tuple(f"{role}{i}" for i in range(n)))


def splits_with(unseen: bool) -> Splits:
    parts = {role: role_split(role) for role in ("retain", "forget", "val", "test")}
    extra = {"unseen": role_split("unseen")} if unseen else {}
    return Splits("toy", TaskKind.MULTICLASS, CLASSES, Preprocess((0.0,), (1.0,)), "toy", **parts, **extra)


@pytest.mark.parametrize("unseen", [False, True])
def test_a_cells_population_attacks_compare_forget_with_the_held_out_role(unseen):
    splits = splits_with(unseen)
    model = LossPerRole()
    losses = {}
    scores = scores_of(model, splits, losses)
    non_members = "unseen" if unseen else "test"
    for role in splits.roles():  # each role's losses are its own: the correctly predicted ones lie in [L, 2L)
        right = losses[role][int(round(SIZES[role] * WRONG_SHARE[role])):]
        assert ROLE_LOSS[role] * 0.999 <= right.min() and right.max() <= ROLE_LOSS[role] * 2.001
    assert scores["test_acc"] == pytest.approx(0.75)  # accuracy from test (val: 0.5, unseen: 0.25)
    assert scores["mia_members"] == scores["mia_nonmembers"] == min(SIZES["forget"], SIZES[non_members])
    expected = metrics.mia_scores(losses["forget"], losses[non_members])
    assert (scores["mia"], scores["mia_auc"]) == (expected.mia, expected.mia_auc)
    assert scores["nomus"] == pytest.approx(0.5 * (0.75 + 1 - 2 * abs(expected.mia - 0.5)))
    wrong_pairs = [("val", non_members), ("forget", "val")] + ([("forget", "test")] if unseen else [])
    for members, others in wrong_pairs:  # the check has power: a miswired attack reads differently here
        wrong = metrics.mia_scores(losses[members], losses[others])
        assert (wrong.mia, wrong.mia_auc) != (expected.mia, expected.mia_auc)


def test_balance_keeps_a_seeded_shuffle_not_a_prefix():
    members, nonmembers = np.arange(100.0), np.arange(1000.0, 1030.0)
    kept, others = metrics.balance(members, nonmembers)
    assert list(others) == list(nonmembers)  # the smaller set is kept whole
    expected = members[np.random.RandomState(42).permutation(100)][:30]  # the recipe: seed 42, then the first 30
    assert list(kept) == list(expected)
    assert list(kept) != list(members[:30])
    whole, shuffled = metrics.balance(nonmembers, members)  # the same rule when the members are the smaller set
    assert list(whole) == list(nonmembers) and list(shuffled) == list(expected)
