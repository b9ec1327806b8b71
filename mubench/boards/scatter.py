"""The picture people look at first, one per board: test accuracy against forgetting score (NoMUS iso-lines drawn,
Original and Retrain marked, 95 % interval bars over seeds), and NoMUS against unlearn time on a log scale."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mubench.boards.leaderboard import board_title, summarise
from mubench.core.store import BOARD_PNG_SUFFIX, REFERENCES, BoardKey, board_name, selected

REFERENCE_STYLE = {"original": ("tab:red", "X"), "retrain": ("tab:green", "*")}


def _bar(value: float) -> float:
    return 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else value


def draw_board(key: tuple, cells: pd.DataFrame, path: Path) -> Path | None:
    """Draw the board of `cells` into `path`; None when it has no finished row."""
    table = summarise(cells)
    if table.empty:
        return None
    table = table[table["variant"] == ""]
    figure = Figure(figsize=(11, 4.6), layout="constrained")
    scatter, timing = figure.subplots(1, 2)
    fs_grid = np.linspace(0, 1, 50)
    for level in np.arange(0.5, 1.0001, 0.1):
        scatter.plot(fs_grid, 2 * level - 1 + fs_grid, color="0.85", lw=0.8, zorder=0)
        if 2 * level - 1 <= 1:
            scatter.annotate(f"NoMUS {level:.1f}", (0.0, 2 * level - 1), fontsize="x-small", color="0.55",
                             xytext=(2, 2), textcoords="offset points")
    for row in table.itertuples():
        colour, marker = REFERENCE_STYLE.get(row.label, ("tab:blue", "o"))
        scatter.errorbar(row.fs, row.test_acc, xerr=_bar(row.fs_ci), yerr=_bar(row.test_acc_ci), fmt=marker,
                         color=colour, ms=9 if row.label in REFERENCES else 6, capsize=2)
        scatter.annotate(row.label, (row.fs, row.test_acc), fontsize="x-small", xytext=(4, 3),
                         textcoords="offset points")
        if row.label != "original" and row.unlearn_seconds > 0:  # the Original takes no time: no place on a log axis
            timing.errorbar(row.unlearn_seconds, row.nomus, yerr=_bar(row.nomus_ci), fmt=marker, color=colour,
                            capsize=2)
            timing.annotate(row.label, (row.unlearn_seconds, row.nomus), fontsize="x-small", xytext=(4, 3),
                            textcoords="offset points")
    low = max(0.0, float(np.nanmin(table["test_acc"] - table["test_acc_ci"].fillna(0))) - 0.05)
    scatter.set(xlim=(-0.02, 1.02), ylim=(low, 1.01), xlabel="forgetting score FS (lower is better)",
                ylabel="test accuracy (higher is better)", title="utility against forgetting")
    timing.set(xscale="log", xlabel="unlearn seconds (log scale)", ylabel="NoMUS", title="NoMUS against cost")
    figure.suptitle(f"{board_title(key)}: means over seeds, bars = 95 % intervals")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    return path


def board_png(key: tuple) -> str:
    return board_name(key)[:-len(".md")] + BOARD_PNG_SUFFIX


def draw_run_boards(tracking_uri: str, out: Path, boards: list[BoardKey], parent_run_id: str) -> list[Path]:
    """After a run: each of its boards' figure under `<out>/plots/`, logged as an artifact of the invocation's run."""
    from mlflow.tracking import MlflowClient

    from mubench.boards.leaderboard import KEY, latest_cells
    cells = latest_cells(tracking_uri)
    if cells.empty:
        return []
    drawn = []
    for key, group in cells.groupby(list(KEY)):
        key = BoardKey(*key)
        if not selected(key, boards):
            continue
        path = draw_board(key, group, Path(out) / "plots" / board_png(key))
        if path is not None:
            MlflowClient(tracking_uri).log_artifact(parent_run_id, str(path), "plots")
            drawn.append(path)
    return drawn
