"""What a board says, cell by cell: the formatting of values and intervals, the reference labels, the ablation
sections, the failed-cells list, the board's title and file name, and the index of a folder of boards.

Every expected string is written out by hand from the values the test feeds in (a mean, a standard deviation and
t(0.975, n − 1) from tables), never read back from the renderer."""
import math
import re
import statistics

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mubench.boards.leaderboard import (CLASS_WISE_NOTE, INDEX, KEY, STABILITY_NOTE, TIE_NOTE, _cell, _fmt,
                                        board_title, latest_cells, rank_labels, render_ablation, render_all,
                                        render_board, render_index, summarise, table, write_index)
from mubench.core.store import BoardKey, TAG, board_name, selected
from mubench.core.tracking import open_experiment

T2 = 4.302653  # t(0.975, 2): three seeds


def parse_tables(markdown: str) -> list[list[list[str]]]:
    """Each block of pipe lines as rows of stripped cells (the delimiter row dropped); escaped pipes stay in a cell."""
    blocks, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            current.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
        elif current:
            blocks.append(current)
            current = []
    for block in blocks:
        assert all(set(c) <= set("-:") for c in block[1]), f"no delimiter row under {block[0]}"
        del block[1]
    return blocks


# Values ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, kwargs, expected", [
    ((0.12345,), {}, "0.123"),
    ((0.98765,), {}, "0.988"),
    ((2,), {}, "2.000"),
    ((94.56,), {"digits": 1}, "94.6"),
    ((0.5,), {"digits": 2}, "0.50"),
    ((0.5, 0.0456), {}, "0.500 ± 0.046"),
    ((12.34, 0.56), {"digits": 1}, "12.3 ± 0.6"),
    ((0.5, 0.0), {}, "0.500 ± 0.000"),  # a zero spread is an interval, not a missing one
    ((-0.12, math.nan), {}, "-0.120"),
    ((math.nan,), {}, "—"),
    ((math.nan, 0.1), {}, "—"),
    ((None,), {}, "—"),
    ((np.float64("nan"),), {}, "—"),
])
def test_fmt(args, kwargs, expected):
    assert _fmt(*args, **kwargs) == expected


def test_cells_escape_pipes_and_leave_numbers_alone():
    assert _cell("a|b|c") == "a\\|b\\|c"
    assert _cell("plain") == "plain"
    assert _cell(3) == 3


def test_table_is_github_markdown_with_numbers_kept_as_written():
    text = table([["x|y", "0.100", "0.000", 3]], ["h|1", "h2", "h3", "h4"])
    lines = text.splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"(\|-+)+\|", lines[1])  # GitHub's delimiter row, no alignment colons
    assert parse_tables(text) == [[["h\\|1", "h2", "h3", "h4"], ["x\\|y", "0.100", "0.000", "3"]]]


def test_two_common_seeds_decide_a_tie():
    """t(0.975, 1) = 12.706: differences .1 and 0 (mean .05, sd .0707) give a half-width of .635, a tie; .1 and .09
    (mean .095, sd .00707) give .0635, separated."""
    lead = {0: 0.8, 1: 0.8}
    assert rank_labels([lead, {0: 0.7, 1: 0.8}]) == ["1=", "1="]
    assert rank_labels([lead, {0: 0.7, 1: 0.71}]) == ["1", "2"]
    # .1 and .08: mean .09, sd .0141, half-width 12.706 · .0141 / √2 = .127 with one degree of freedom: a tie
    assert rank_labels([lead, {0: 0.7, 1: 0.72}]) == ["1=", "1="]


def test_a_row_that_decides_nothing_keeps_the_rows_below_it():
    lead = {0: 0.8, 1: 0.8, 2: 0.8}
    rows = [lead, {5: 0.7}, {0: 0.6, 1: 0.61, 2: 0.59}, {0: 0.5, 1: 0.5, 2: 0.51}]  # no common seed, then two more
    assert rank_labels(rows) == ["1", "2", "3", "4"]


# Titles and file names -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, expected", [
    (("digits", "resnet18", "default"), ("digits", "resnet18", "default", "linear", "none", "random", "")),
    (("digits", "resnet18", "smoke", "mlp"), ("digits", "resnet18", "smoke", "mlp", "none", "random", "")),
    (("d", "r", "smoke", "mlp", "imagenet"), ("d", "r", "smoke", "mlp", "imagenet", "random", "")),
    (("d", "r", "smoke", "mlp", "imagenet", "class:3"), ("d", "r", "smoke", "mlp", "imagenet", "class:3", "")),
    (("a", "b", "c", "d", "e", "f", "4"), ("a", "b", "c", "d", "e", "f", "4")),
])
def test_a_board_key_fills_the_defaults(key, expected):
    assert BoardKey(*key) == expected
    assert len(BoardKey(*key)) == len(KEY)


@pytest.mark.parametrize("only, chosen", [
    (None, True), ([], False), ([("digits",)], True), ([("digits", "resnet18", "smoke")], False),
    ([BoardKey("digits", "resnet18", "default", scenario="class:3")], True),  # a run's board, whatever its threads
    ([BoardKey("digits", "resnet18", "default", scenario="class:3", board_threads="1")], False),
    ([BoardKey("digits", "resnet18", "default")], False), ([("fer2013",), ("digits", "resnet18")], True),
])
def test_a_board_is_selected_by_a_key_or_a_prefix(only, chosen):
    assert selected(BoardKey("digits", "resnet18", "default", scenario="class:3", board_threads="2"), only) is chosen


@pytest.mark.parametrize("key, title, name", [
    (("digits", "resnet18", "default"), "digits × resnet18", "digits-resnet18.md"),
    (("digits", "resnet18", "smoke"), "digits × resnet18 (preset smoke)", "digits-resnet18-smoke.md"),
    (("digits", "resnet18", "default", "mlp", "none", "random", ""), "digits × resnet18 (mlp head)",
     "digits-resnet18-head-mlp.md"),
    (("mufac", "vit", "default", "linear", "0123456789abcdef", "random", ""),
     "mufac × vit (pretrained 0123456789abcdef)", "mufac-vit-pretrained-01234567.md"),
    (("digits", "resnet18", "default", "linear", "none", "random", "4"), "digits × resnet18 (4 torch threads)",
     "digits-resnet18-threads-4.md"),
    (("digits", "resnet18", "default", "linear", "none", "class:3", ""), "digits × resnet18 (class 3 forgotten)",
     "digits-resnet18-class3.md"),
    (("faces", "vit", "default", "linear", "none", "identity", ""), "faces × vit (identity forgetting)",
     "faces-vit-identity.md"),
    (("digits", "resnet18", "smoke", "mlp", "imagenet", "class:7", "1"),
     "digits × resnet18 (class 7 forgotten, preset smoke, mlp head, pretrained imagenet, 1 torch threads)",
     "digits-resnet18-class7-smoke-head-mlp-pretrained-imagenet-threads-1.md"),
])
def test_board_title_and_name(key, title, name):
    assert board_title(key) == title
    assert board_name(key) == name


# Summaries -----------------------------------------------------------------------------------------------------------

METRIC_COLUMNS = ("test_acc", "forget_acc", "retain_acc", "mia", "fs", "mia_logloss", "mia_auc", "unlearn_seconds",
                  "time_ratio", "nomus")


def cell(label: str, seed: int, status: str = "FINISHED", **values) -> dict:
    """One cell row as latest_cells gives it; every metric 0.5 unless given."""
    method = label.split("[")[0]
    row = {"status": status, "label": label, "method": method, "seed": str(seed),
           "command": "mubench run --seeds 0,1,2", "split_hash": "f" * 64, "error": None, "threads": "2",
           "base": method, "variant": label[len(method) + 1:-1] if "[" in label else ""}
    row.update({m: 0.5 for m in METRIC_COLUMNS})
    row.update(values)
    return row


def cells_of(spec: dict[str, dict[str, tuple]], **common) -> list[dict]:
    """{label: {metric: per-seed values}}: one cell per seed."""
    rows = []
    for label, metrics in spec.items():
        n = len(next(iter(metrics.values())))
        for seed in range(n):
            rows.append(cell(label, seed, **{m: v[seed] for m, v in metrics.items()}, **common))
    return rows


def test_summarise_means_intervals_per_seed():
    rows = cells_of({"retrain": {"nomus": (0.90, 0.93, 0.96), "test_acc": (0.8, 0.9, 1.0)},
                     "b": {"nomus": (0.5, 0.6)}, "a": {"nomus": (0.55, 0.55)}})
    rows.append(cell("a", 2, status="FAILED", nomus=0.99))  # failed cells count nowhere
    rows.append(cell("ghost", 0, status="FAILED", nomus=0.99))
    summary = summarise(pd.DataFrame(rows))
    assert list(summary["label"]) == ["retrain", "a", "b"]  # by NoMUS, then by label at equal NoMUS
    retrain, a, b = (summary.iloc[i] for i in range(3))
    assert retrain["nomus"] == pytest.approx(0.93)
    assert retrain["nomus_ci"] == pytest.approx(T2 * 0.03 / math.sqrt(3), rel=1e-6)
    assert retrain["test_acc"] == pytest.approx(0.9)
    assert retrain["test_acc_ci"] == pytest.approx(T2 * 0.1 / math.sqrt(3), rel=1e-6)
    assert list(summary["seeds"]) == [3, 2, 2]
    assert a["per_seed"] == {0: 0.55, 1: 0.55} and b["per_seed"] == {0: 0.5, 1: 0.6}
    assert all(type(k) is int for k in a["per_seed"])
    assert (a["method"], a["base"], a["variant"]) == ("a", "a", "")


def test_summarise_pairs_each_row_with_retrain_seed_by_seed():
    """Δ NoMUS and the gap to Retrain are means over the seeds the row shares with Retrain, of per-seed
    differences."""
    rows = cells_of({"retrain": {"nomus": (0.90, 0.93, 0.96), "test_acc": (0.8, 0.9, 1.0),
                                 "forget_acc": (0.5, 0.6, 0.7), "mia": (0.50, 0.52, 0.54)},
                     "original": {"nomus": (0.70, 0.70, 0.70), "test_acc": (0.95, 0.95, 0.95)}})
    rows.append(cell("late", 2, nomus=0.5, test_acc=0.3))  # seed 2 only: compared with Retrain's seed 2
    rows.append(cell("apart", 7, nomus=0.5))  # no seed in common with Retrain
    summary = summarise(pd.DataFrame(rows)).set_index("label")
    # original − retrain per seed: −.20, −.23, −.26 (mean −.23, sd .03)
    assert summary.loc["original", "delta_nomus"] == pytest.approx(-0.23)
    assert summary.loc["original", "delta_nomus_ci"] == pytest.approx(T2 * 0.03 / math.sqrt(3), rel=1e-6)
    # SalUn's gap, per seed the mean of |Δ| over forget acc, retain acc, test acc and MIA:
    gaps = [(0.0 + 0.0 + 0.15 + 0.0) / 4, (0.1 + 0.0 + 0.05 + 0.02) / 4, (0.2 + 0.0 + 0.05 + 0.04) / 4]
    assert summary.loc["original", "gap"] == pytest.approx(statistics.mean(gaps))
    assert summary.loc["original", "gap_ci"] == pytest.approx(T2 * statistics.stdev(gaps) / math.sqrt(3), rel=1e-6)
    assert summary.loc["retrain", "delta_nomus"] == 0.0 and summary.loc["retrain", "gap"] == 0.0
    assert summary.loc["late", "delta_nomus"] == pytest.approx(0.5 - 0.96)  # Retrain's seed 2, not its mean
    assert summary.loc["late", "gap"] == pytest.approx((0.2 + 0.0 + 0.7 + 0.04) / 4)
    assert math.isnan(summary.loc["late", "delta_nomus_ci"])  # one common seed: no interval
    assert math.isnan(summary.loc["apart", "delta_nomus"]) and math.isnan(summary.loc["apart", "gap"])


def test_summarise_without_retrain_or_a_metric():
    rows = [cell("finetune[lr=0.1]", 0, nomus=0.7), cell("finetune[lr=0.1]", 1, nomus=0.8)]
    frame = pd.DataFrame(rows).drop(columns=["mia_auc"])
    summary = summarise(frame)
    assert math.isnan(summary.loc[0, "delta_nomus"]) and math.isnan(summary.loc[0, "gap"])  # no Retrain row
    assert math.isnan(summary.loc[0, "mia_auc"]) and math.isnan(summary.loc[0, "mia_auc_ci"])
    assert (summary.loc[0, "method"], summary.loc[0, "base"], summary.loc[0, "variant"]) == \
        ("finetune", "finetune", "lr=0.1")
    bare = summarise(pd.DataFrame(rows).drop(columns=["base", "variant"]))  # stores from before the ablation tags
    assert (bare.loc[0, "base"], bare.loc[0, "variant"]) == ("finetune[lr=0.1]", "")


def test_gap_uses_the_accuracies_and_mia_that_a_store_has():
    rows = cells_of({"retrain": {"test_acc": (0.9, 0.9), "mia": (0.5, 0.5)},
                     "x": {"test_acc": (0.7, 0.8), "mia": (0.6, 0.6)}})
    frame = pd.DataFrame(rows).drop(columns=["forget_acc", "retain_acc"])
    x = summarise(frame).set_index("label").loc["x"]
    assert x["gap"] == pytest.approx(statistics.mean([(0.2 + 0.1) / 2, (0.1 + 0.1) / 2]))


def test_no_gap_without_the_gap_metrics():
    rows = cells_of({"retrain": {"nomus": (0.9, 0.9)}, "x": {"nomus": (0.7, 0.8)}})
    frame = pd.DataFrame(rows).drop(columns=["forget_acc", "retain_acc", "test_acc", "mia"])
    x = summarise(frame).set_index("label").loc["x"]
    assert math.isnan(x["gap"]) and math.isnan(x["gap_ci"])
    assert x["delta_nomus"] == pytest.approx(-0.15)


def test_summarise_of_failed_cells_only_is_empty():
    assert summarise(pd.DataFrame([cell("a", 0, status="FAILED")])).empty


# A whole board --------------------------------------------------------------------------------------------------------

HEADERS = ["#", "method", "test acc", "forget acc", "MIA", "FS", "NoMUS", "Δ NoMUS vs retrain", "gap to retrain",
           "MIA log-loss", "MIA AUC", "unlearn s", "× retrain", "seeds"]
H = T2 / math.sqrt(3)  # three seeds: the half-width per unit of standard deviation


@pytest.fixture  # per test: a mutation tool maps each test to the code it runs, fixture set-up included
def board() -> str:
    rows = cells_of({
        "retrain": {"test_acc": (0.8, 0.9, 1.0), "forget_acc": (0.5, 0.6, 0.7), "mia": (0.50, 0.52, 0.54),
                    "fs": (0.0, 0.04, 0.08), "nomus": (0.90, 0.93, 0.96), "mia_logloss": (0.6, 0.6, 0.6),
                    "mia_auc": (0.7, 0.7, 0.7), "unlearn_seconds": (10.0, 12.0, 14.0), "time_ratio": (1, 1, 1)},
        "original": {"test_acc": (0.95, 0.95, 0.95), "nomus": (0.70, 0.70, 0.70)},
        "finetune": {"nomus": (0.80, 0.81, 0.82), "mia": (math.nan, math.nan, math.nan)},
        "solo": {"nomus": (0.5,), "test_acc": (0.3,)},
        "finetune[lr=0.1]": {"nomus": (0.99, 0.99, 0.99)},  # an ablation variant: its own section only
    })
    rows[0]["command"] = ""
    rows[1]["command"] = None
    rows[-1]["command"] = "mubench run --ablate"
    rows[-1]["split_hash"] = "0123456789abcdef" * 4
    rows[-1]["threads"] = "1"
    rows.append(cell("broken", 5, status="FAILED", error="ValueError: boom", command="mubench run --seeds 5"))
    return render_board(("digits", "resnet18", "smoke"), pd.DataFrame(rows))


def test_board_header(board):
    lines = board.splitlines()
    assert lines[0] == "# Leaderboard: digits × resnet18 (preset smoke)"
    start = lines.index("Produced by:")
    assert lines[start + 1:start + 6] == ["", "    mubench run --ablate", "    mubench run --seeds 0,1,2",
                                          "    mubench run --seeds 5", ""]  # sorted, once each, blanks dropped
    assert "Rendered from the MLflow store by `mubench leaderboard`. " in board
    assert "Split manifest SHA-256: 0123456789ab…, ffffffffffff…. " in board
    assert "Seeds: 0, 1, 2. " in board  # finished cells' seeds only: not the failed seed 5
    assert "Torch threads per cell: 1, 2." in board


def test_board_main_table(board):
    main = parse_tables(board)[0]
    assert main[0] == HEADERS
    by_name = {row[1]: row for row in main[1:]}
    assert list(by_name) == ["retrain (reference)", "finetune", "original (reference)", "solo"]  # by NoMUS
    assert by_name["retrain (reference)"] == [
        "1", "retrain (reference)", f"0.900 ± {0.1 * H:.3f}", "0.600", "0.520", f"0.040 ± {0.04 * H:.3f}",
        f"0.930 ± {0.03 * H:.3f}", "0.000 ± 0.000", "0.000 ± 0.000", "0.600", "0.700", "12.0", "1.000", "3"]
    assert f"0.040 ± {0.04 * H:.3f}" == "0.040 ± 0.099"  # the hand value, to three places
    finetune = by_name["finetune"]
    assert finetune[4] == "—"  # no MIA on any seed
    assert finetune[6] == f"0.810 ± {0.01 * H:.3f}"
    assert finetune[7] == f"-0.120 ± {0.02 * H:.3f}"  # paired: −.10, −.12, −.14
    assert finetune[8] == "—"  # the gap needs the MIA
    assert by_name["original (reference)"][2] == "0.950 ± 0.000"
    assert by_name["original (reference)"][7] == f"-0.230 ± {0.03 * H:.3f}"
    solo = by_name["solo"]
    assert solo[2] == "0.300" and solo[6] == "0.500"  # one seed: no interval
    assert solo[7] == "-0.400" and solo[8] == "0.125"  # against Retrain's seed 0: (0 + 0 + .5 + 0) / 4
    assert solo[-1] == "1"
    assert [row[0] for row in main[1:]] == ["1", "2", "3", "4"]  # every row separated from the leader


def test_board_legend_explains_the_columns(board):
    """The facts a reader needs under the table: how rows are ranked, what ± means, FS's scale, the attacks, and
    each derived column, in one paragraph after the table."""
    legend = next(line for line in board.splitlines() if line.startswith("Ranked by"))
    assert legend.startswith("Ranked by NoMUS = ½·(test acc + 1 − FS). Values are means over seeds; ")
    for words in ("test acc, FS and NoMUS show ± the half-width of their 95 % Student-t interval when there are "
                  "several seeds. FS is the forgetting score 2·(MIA − 0.5) in absolute value, the paper's scale "
                  "(the MUFAC notebooks print half of it). MIA: logistic regression on per-sample losses, forget "
                  "(members) vs test (non-members; the task's separate unseen set where it has one), balanced by a "
                  "seeded shuffle",
                  "stratified shuffle split. MIA log-loss and MIA AUC are scale-free attacks beside it (not in NoMUS). "
                  "× retrain: unlearn seconds over the seconds it took to train the Retrain reference. A row is one "
                  "method with one configuration: --set overrides and ablation variants show in its name. "
                  "Δ NoMUS vs retrain: the mean over seeds of the row's NoMUS minus Retrain's on the same seed, ± "
                  "its 95 % interval. Gap to retrain: SalUn's average gap, the mean absolute difference from Retrain "
                  "on the same seed over forget acc, retain acc, test acc and MIA (0: indistinguishable from "
                  "Retrain). "):
        assert words in legend
    assert legend.endswith(TIE_NOTE + STABILITY_NOTE)
    assert CLASS_WISE_NOTE not in board


def test_board_ablation_and_failed_cells(board):
    tables = parse_tables(board)
    assert len(tables) == 2
    lines = board.splitlines()
    heading = lines.index("## Ablation: finetune")
    assert lines[heading - 1] == lines[heading + 1] == "" and lines[heading + 2].startswith("| variant")
    ablation = tables[1]
    assert ablation[0] == ["variant", "test acc", "Δ test acc vs original", "FS", "NoMUS", "unlearn s", "seeds"]
    assert [row[0] for row in ablation[1:]] == ["finetune", "finetune[lr=0.1]"]  # the full configuration first
    assert ablation[2][1:] == ["0.500 ± 0.000", "-0.450 ± 0.000", "0.500 ± 0.000", "0.990 ± 0.000", "0.5", "3"]
    failed = board.index("Failed or refused cells:")
    assert board.index("## Ablation: finetune") < failed
    assert board[failed:].splitlines()[2:] == ["- broken (seed 5): ValueError: boom"]
    assert "broken" not in "".join(" ".join(r) for r in tables[0])


def test_class_wise_board_shows_the_forgotten_class_accuracy():
    rows = cells_of({"retrain": {"nomus": (0.9, 0.9), "forgotten_test_acc": (0.0, 0.02)},
                     "finetune": {"nomus": (0.8, 0.8), "forgotten_test_acc": (0.5, 0.7), "forget_acc": (0.9, 0.8)}})
    text = render_board(("digits", "resnet18", "default", "linear", "none", "class:3"), pd.DataFrame(rows))
    assert text.startswith("# Leaderboard: digits × resnet18 (class 3 forgotten)\n")
    main = parse_tables(text)[0]
    assert main[0][:7] == ["#", "method", "UA", "RA", "TA", "forgotten-class acc", "MIA-efficacy"]
    assert [(row[1], row[2], row[5]) for row in main[1:]] == [("retrain (reference)", "0.500", "0.010"),
                                                              ("finetune", "0.150", "0.600")]
    assert CLASS_WISE_NOTE in text


def test_lira_columns_and_note_only_where_the_store_has_lira_cells(board):
    assert "LiRA" not in board
    lira = {"lira_auc": (0.6, 0.7), "lira_tpr1": (0.02, 0.04), "lira_tpr5": (0.1, 0.1), "lira_shadows": (8, 8),
            "lira_shadow_seconds": (30.0, 50.0), "retrain_seconds": (10.0, 10.0),
            "lira_shadow_bytes": (51200, 153600)}
    rows = cells_of({"retrain": {"nomus": (0.9, 0.9), **lira}, "finetune": {"nomus": (0.8, 0.8), **lira}},
                    attacks="lira")
    text = render_board(("digits", "resnet18", "default"), pd.DataFrame(rows))
    main = parse_tables(text)[0]
    assert main[0] == HEADERS[:11] + ["LiRA AUC", "LiRA TPR@1%FPR", "LiRA TPR@5%FPR"] + HEADERS[11:]
    t1 = 12.706205  # t(0.975, 1): two seeds; sd of (a, b) is |a − b|/√2, so the half-width is t1·|a − b|/2
    assert main[1][11:14] == [f"0.650 ± {t1 * 0.1 / 2:.3f}", f"0.030 ± {t1 * 0.02 / 2:.3f}", "0.100 ± 0.000"]
    # shadows cost 30/10 and 50/10 of Retrain's time on the two seeds (mean 4), and 50 and 150 KiB (mean 100)
    assert "calibrated by 8 shadow models per seed" in text
    assert "Training the shadows took 4.0× the Retrain's time per seed; the cache keeps 100.0 KiB of them per seed. " \
        in text


def test_ulira_columns_show_its_cost_as_a_multiple_of_retrain(board):
    assert "U-LiRA" not in board
    lira = {"lira_auc": (0.6, 0.6), "lira_tpr1": (0.02, 0.02), "lira_tpr5": (0.1, 0.1), "lira_shadows": (4, 4),
            "lira_shadow_seconds": (40.0, 40.0), "retrain_seconds": (10.0, 20.0), "lira_shadow_bytes": (1024, 1024),
            "ulira_auc": (0.7, 0.9), "ulira_tpr1": (0.05, 0.05), "ulira_tpr5": (0.2, 0.2),
            "ulira_cost": (0.5, 1.5)}
    rows = cells_of({"retrain": {"nomus": (0.9, 0.9), **lira}, "finetune": {"nomus": (0.8, 0.8), **lira}},
                    attacks="lira,ulira")
    text = render_board(("digits", "resnet18", "default"), pd.DataFrame(rows))
    main = parse_tables(text)[0]
    assert main[0][14:18] == ["U-LiRA AUC", "U-LiRA TPR@1%FPR", "U-LiRA TPR@5%FPR", "U-LiRA cost × retrain"]
    t1 = 12.706205  # two seeds: half-width t1·|a − b|/2
    # cost 0.5 and 1.5 of the Retrain's seconds on the two seeds: mean 1.0, one decimal
    assert main[1][14:18] == [f"0.800 ± {t1 * 0.2 / 2:.3f}", "0.050 ± 0.000", "0.200 ± 0.000",
                              f"1.0 ± {t1 * 1.0 / 2:.1f}"]
    assert "U-LiRA (--attack ulira, not in NoMUS)" in text


def test_an_attack_not_installed_where_the_board_is_rendered_is_named_not_shown():
    rows = cells_of({"retrain": {"nomus": (0.9, 0.9), "ghost_auc": (0.6, 0.6)},
                     "finetune": {"nomus": (0.8, 0.8), "ghost_auc": (0.7, 0.7)}}, attacks="ghost")
    text = render_board(("digits", "resnet18", "default"), pd.DataFrame(rows))
    assert parse_tables(text)[0][0] == HEADERS
    assert "Attack 'ghost' scored these cells, but it is not installed here, so its columns are not shown." in text


def test_board_with_no_failures_and_no_threads_column():
    frame = pd.DataFrame([cell("finetune", 0)]).drop(columns=["threads"])
    text = render_board(("digits", "resnet18", "default"), frame)
    assert text.startswith("# Leaderboard: digits × resnet18\n")
    assert "Torch threads per cell: —." in text
    assert "Failed or refused" not in text and "## Ablation" not in text
    assert text.endswith(".\n")


def test_board_of_failed_cells_only():
    text = render_board(("digits", "resnet18", "default"), pd.DataFrame([cell("a", 3, status="FAILED", error="x")]))
    assert "Seeds: —. " in text
    assert parse_tables(text) == [[HEADERS]]
    assert text.splitlines()[-1] == "- a (seed 3): x"


def test_ablation_puts_the_full_configuration_first_then_the_variants_by_nomus():
    rows = cells_of({"dlfd[b]": {"nomus": (0.7, 0.7)}, "dlfd": {"nomus": (0.8, 0.8)},
                     "dlfd[a]": {"nomus": (0.9, 0.9)}, "dlfd[c]": {"nomus": (0.85, 0.85)},
                     "scrub[x]": {"nomus": (0.95, 0.95)}})
    frame = pd.DataFrame(rows)
    ablation = parse_tables(render_ablation(summarise(frame), "dlfd"))[0]
    assert [row[0] for row in ablation[1:]] == ["dlfd", "dlfd[a]", "dlfd[c]", "dlfd[b]"]
    assert ablation[1][-1] == "2"


def test_ablation_sections_follow_the_bases_in_order():
    rows = cells_of({"scrub": {"nomus": (0.6,)}, "scrub[x]": {"nomus": (0.9,)}, "dlfd": {"nomus": (0.8,)},
                     "dlfd[y]": {"nomus": (0.7,)}})
    text = render_board(("digits", "resnet18", "default"), pd.DataFrame(rows))
    assert text.index("## Ablation: dlfd") < text.index("## Ablation: scrub")
    assert [row[1] for row in parse_tables(text)[0][1:]] == ["dlfd", "scrub"]


# The index of a folder of boards -------------------------------------------------------------------------------------

def test_index_lists_each_board(tmp_path):
    (tmp_path / "a.md").write_text("# Leaderboard: digits × resnet18\n\nProduced by:\n\n    mubench run --set 'a|b'\n"
                                   "    mubench run --ablate\n    python other.py\n\nRendered. Seeds: 0, 1, 2. "
                                   "Torch threads per cell: 2.\n")
    (tmp_path / "b.md").write_text("# Leaderboard: faces × vit\n\nnothing else\n")
    (tmp_path / "c.md").write_text("")
    (tmp_path / INDEX).write_text("# an old index\n")
    (tmp_path / "notes.txt").write_text("# Leaderboard: not a board\n")
    text = render_index(tmp_path)
    lines = text.splitlines()
    assert lines[0] == "# Leaderboards"
    assert lines[1:4] == ["", (
        "Generated from the MLflow store by `mubench leaderboard`, never edited by hand; this index is rewritten with "
        "the boards. The workflow `.github/workflows/leaderboard.yml` reruns the default grid on seeds 0 to 5 with "
        "`--ablate`, then each method tuned with the preset in `presets/` tuned for that board (on other seeds, never "
        "on test), and commits the boards here. How to read a board: "
        "[Reading the leaderboard](../README.md#reading-the-leaderboard)."), ""]
    assert parse_tables(text) == [[
        ["board", "task × backbone", "seeds", "produced by"],
        ["[a.md](a.md)", "digits × resnet18", "0, 1, 2", "`mubench run --set 'a\\|b'`<br>`mubench run --ablate`"],
        ["[b.md](b.md)", "faces × vit", "—", "—"],
        ["[c.md](c.md)", "c", "—", "—"]]]
    assert text.endswith("\n")


def test_index_of_an_empty_folder_and_write_index(tmp_path):
    empty = render_index(tmp_path)
    assert "No boards yet: `mubench leaderboard --store <run folder> --out leaderboards/` writes them here." \
        in empty.splitlines()
    assert parse_tables(empty) == []
    (tmp_path / "x.md").write_text("# Leaderboard: x × y\n")
    path = write_index(tmp_path)
    assert path == tmp_path / "README.md"
    assert path.read_text() == render_index(tmp_path)
    assert "[x.md](x.md)" in path.read_text()


# What a board reads from the store ------------------------------------------------------------------------------------

def log_cell(client, experiment: str, label: str, seed: int, status: str = "FINISHED", params: dict | None = None,
             **tags) -> None:
    """A cell run with only the tags given (a store written by an older mubench lacks the newer ones)."""
    all_tags = {f"{TAG}kind": "cell", f"{TAG}label": label, f"{TAG}method": label.split("[")[0],
                f"{TAG}task": "digits", f"{TAG}backbone": "resnet18", f"{TAG}preset": "default",
                f"{TAG}seed": str(seed), f"{TAG}config_hash": "c1", f"{TAG}split_hash": "0" * 64,
                f"{TAG}command": "mubench run", **{f"{TAG}{k}": v for k, v in tags.items()}}
    run = client.create_run(experiment, tags=all_tags)
    for name, value in (params or {}).items():
        client.log_param(run.info.run_id, name, value)
    client.log_metric(run.info.run_id, "nomus", 0.5 + seed / 10)
    client.set_terminated(run.info.run_id, status=status)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    experiment = open_experiment(uri, folder / "mlartifacts")
    client = MlflowClient(uri)
    log_cell(client, experiment, "finetune", 0, threads="2")  # no head, weights, scenario, variant or base tags
    log_cell(client, experiment, "finetune", 1, status="FAILED", threads="2", error="ValueError: boom")
    log_cell(client, experiment, "finetune", 2, status="KILLED", threads="2")
    log_cell(client, experiment, "retrain", 0, params={"threads": "2"})  # threads as a param only
    log_cell(client, experiment, "dlfd", 0, preset="smoke", threads="1", head="mlp", pretrained="imagenet",
             scenario="class:3", variant="", base="dlfd")
    log_cell(client, experiment, "dlfd", 1, preset="smoke", threads="4", head="mlp", pretrained="imagenet",
             scenario="class:3")
    log_cell(client, experiment, "dlfd", 2, preset="smoke", head="mlp", pretrained="imagenet", scenario="class:3")
    log_cell(client, experiment, "dlfd[no-ot]", 0, preset="smoke", threads="1", head="mlp", pretrained="imagenet",
             scenario="class:3", variant="no-ot", base="dlfd")
    # the same label on another board, with another configuration, run later: each board keeps its own latest
    log_cell(client, experiment, "retrain", 0, preset="tiny", threads="2", config_hash="c2")
    return uri


def test_latest_cells_fills_the_tags_an_older_store_lacks(store):
    cells = latest_cells(store)
    assert sorted(zip(cells["preset"], cells["label"], cells["seed"])) == [
        ("default", "finetune", "0"), ("default", "finetune", "1"), ("default", "retrain", "0"),
        ("smoke", "dlfd", "0"), ("smoke", "dlfd", "1"), ("smoke", "dlfd", "2"), ("smoke", "dlfd[no-ot]", "0"),
        ("tiny", "retrain", "0")]  # finished and failed cells, not killed ones
    assert (cells.loc[cells["preset"] == "tiny", "config_hash"] == "c2").all()
    cells = cells[cells["preset"] != "tiny"].set_index(["label", "seed"])
    assert (cells.loc[("dlfd[no-ot]", "0"), "variant"], cells.loc[("dlfd[no-ot]", "0"), "base"]) == ("no-ot", "dlfd")
    finetune = cells.loc[("finetune", "0")]
    assert (finetune["head"], finetune["pretrained"], finetune["scenario"]) == ("linear", "none", "random")
    assert (finetune["variant"], finetune["base"]) == ("", "finetune")
    assert cells.loc[("finetune", "1"), "status"] == "FAILED"
    assert cells.loc[("finetune", "1"), "error"] == "ValueError: boom"
    assert cells.loc[("retrain", "0"), "threads"] == "2"
    assert cells.loc[("finetune", "0"), "nomus"] == 0.5 and "metrics.nomus" not in cells.columns
    dlfd = cells.loc["dlfd"]
    assert (dlfd["head"].iloc[0], dlfd["pretrained"].iloc[0], dlfd["scenario"].iloc[0]) == ("mlp", "imagenet",
                                                                                            "class:3")
    # one thread count per board needs no board of its own; several split it, and a cell without one reads "?"
    assert list(cells.loc["dlfd"].sort_index()["board_threads"]) == ["1", "4", "?"]
    assert cells.loc[("dlfd[no-ot]", "0"), "board_threads"] == "1"
    assert set(cells.loc[["finetune", "retrain"], "board_threads"]) == {""}


def test_render_all_writes_the_boards_asked_for_and_an_index(store, tmp_path):
    out = tmp_path / "site" / "boards"  # a folder whose parent does not exist yet either
    written = render_all(store, out, only=[("digits", "resnet18", "smoke")])
    names = sorted(path.name for path, _ in written.values())
    assert names == ["digits-resnet18-class3-smoke-head-mlp-pretrained-imagenet-threads-1.md",
                     "digits-resnet18-class3-smoke-head-mlp-pretrained-imagenet-threads-4.md",
                     "digits-resnet18-class3-smoke-head-mlp-pretrained-imagenet-threads-?.md"]
    for key, (path, text) in written.items():
        assert key[:3] == ("digits", "resnet18", "smoke") and path.read_text() == text
    index = (out / INDEX).read_text()
    assert all(f"[{name}]({name})" in index for name in names) and "[digits-resnet18.md]" not in index
    everything = render_all(store, out)  # again, into the folder that now exists
    assert sorted(path.name for path, _ in everything.values()) == sorted(["digits-resnet18.md",
                                                                            "digits-resnet18-tiny.md", *names])
    assert "[digits-resnet18.md](digits-resnet18.md)" in (out / INDEX).read_text()


def test_render_all_of_an_empty_store_writes_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert latest_cells(uri).empty
    assert render_all(uri, tmp_path / "boards") == {}
    assert not (tmp_path / "boards").exists()


def test_a_board_whose_lira_cells_all_failed_says_so_under_the_table():
    rows = [cell("retrain", 0, attacks="lira"), cell("finetune", 0, status="FAILED", attacks="lira")]
    text = render_board(("digits", "resnet18", "default"), pd.DataFrame(rows).drop(columns=["lira_auc"],
                                                                                  errors="ignore"))
    assert "LiRA (--attack lira, not in NoMUS): no cell finished with it." in text
