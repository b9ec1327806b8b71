"""The picture people look at first, one per board: test accuracy against forgetting score (NoMUS iso-lines drawn,
Original and Retrain marked), and NoMUS against unlearn time on a log scale; 95 % interval bars over seeds where the
board has more than one seed. One colour per method, named in a legend beside the panels."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mubench.boards.leaderboard import board_title, summarise
from mubench.core.store import BOARD_PNG_SUFFIX, BoardKey, board_name, selected

REFERENCE_STYLE = {"original": ("black", "X"), "retrain": ("black", "*")}  # label -> (colour, marker)
REFERENCE_NAMES = {"original": "Original (reference: trained on all)",
                   "retrain": "Retrain (reference: trained on retain only)"}
METHOD_MARKERS = ("o", "s", "D", "^", "v", "P")  # the next shape once a palette's colours run out
NO_TIME_MARKER = "<"  # a row without unlearn time, at the left edge of the log-time axis
NO_TIME_SYMBOL = "◀"  # the same triangle in the axis label
NOMUS_LEVELS = np.round(np.arange(0.5, 1.0001, 0.1), 1)
TOP = 1.02  # upper limit of the accuracy and NoMUS axes, both at most 1
ISO_COLOUR = "0.8"


def _bar(value: float) -> float:
    return 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else value


def styles(labels) -> dict[str, tuple]:
    """Each label's (colour, marker): the references' own, then a qualitative palette over the methods in label
    order, so a method keeps its colour on every board of the same methods."""
    methods = sorted(label for label in labels if label not in REFERENCE_STYLE)
    palette = colormaps["tab10" if len(methods) <= 10 else "tab20"]
    found = {label: REFERENCE_STYLE[label] for label in labels if label in REFERENCE_STYLE}
    return found | {label: (palette(i % palette.N), METHOD_MARKERS[i // palette.N % len(METHOD_MARKERS)])
                    for i, label in enumerate(methods)}


def untimed(table: pd.DataFrame) -> pd.Series:
    """Rows with no unlearn time to put on a log axis: the Original (nothing to unlearn) and any row timed at 0."""
    return (table["label"] == "original") | ~(table["unlearn_seconds"] > 0)


def board_figure(key: tuple, cells: pd.DataFrame) -> Figure | None:
    """The board's figure; None when it has no finished row."""
    table = summarise(cells)
    if table.empty:
        return None
    table = table[table["variant"] == ""]
    bars = int(table["seeds"].max()) > 1
    style = styles(table["label"])
    figure = Figure(figsize=(12, max(4.6, 1.6 + 0.24 * (len(style) + 1))), layout="constrained")
    utility, cost = figure.subplots(1, 2)
    _utility_panel(utility, table, style, bars)
    _cost_panel(cost, table, style, bars)
    ranked = [*[label for label in REFERENCE_STYLE if label in style],
              *[label for label in table["label"] if label not in REFERENCE_STYLE]]
    handles = [Line2D([], [], ls="", marker=style[label][1], color=style[label][0],
                      ms=10 if label in REFERENCE_STYLE else 7, label=REFERENCE_NAMES.get(label, label))
               for label in ranked]
    handles.append(Line2D([], [], color=ISO_COLOUR, label="NoMUS iso-lines (values on the top edge)"))
    figure.legend(handles=handles, loc="outside right center", fontsize="small",
                  title="references, then methods by NoMUS", title_fontsize="small")
    spread = "bars = 95 % intervals" if bars else "no interval bars"
    figure.suptitle(f"{board_title(key)}: {_seed_words(table['seeds'])}, {spread}")
    return figure


def _seed_words(seeds: pd.Series) -> str:
    low, high = int(seeds.min()), int(seeds.max())
    if high == 1:
        return "one seed"
    return f"means over {high} seeds" if low == high else f"means over {low}–{high} seeds"


def _utility_panel(ax: Axes, table: pd.DataFrame, style: dict, bars: bool) -> None:
    fs_grid = np.linspace(0, 1, 50)
    for level in NOMUS_LEVELS:  # NoMUS = (accuracy + 1 − FS) / 2
        ax.plot(fs_grid, 2 * level - 1 + fs_grid, color=ISO_COLOUR, lw=0.8, zorder=0)
    for row in table.itertuples():
        colour, marker = style[row.label]
        if bars:
            ax.errorbar(row.fs, row.test_acc, xerr=_bar(row.fs_ci), yerr=_bar(row.test_acc_ci), fmt="none",
                        ecolor=colour, elinewidth=0.8, capsize=2, alpha=0.6)
        _point(ax, row.fs, row.test_acc, row.label, colour, marker)
    spread = table["test_acc_ci"].fillna(0) if bars else 0
    low = max(0.0, float(np.nanmin(table["test_acc"] - spread)) - 0.05)
    ax.set(xlim=(-0.02, 1.02), ylim=(min(low, 0.9), TOP), xlabel="forgetting score FS (lower is better)",
           ylabel="test accuracy (higher is better)", title="utility against forgetting")
    top_edge = ax.secondary_xaxis("top")  # each iso-line labelled where it leaves the panel, away from the points
    top_edge.set_xticks(TOP + 1 - 2 * NOMUS_LEVELS, labels=[f"{level:.1f}" for level in NOMUS_LEVELS],
                        fontsize="x-small", color="0.45")
    top_edge.set_xlabel("NoMUS of the iso-line", fontsize="x-small", color="0.45")


def _cost_panel(ax: Axes, table: pd.DataFrame, style: dict, bars: bool) -> None:
    no_time = untimed(table)
    times = table.loc[~no_time, "unlearn_seconds"]
    edge, right = (times.min() / 4, times.max() * 3) if len(times) else (0.01, 1.0)
    for row, timeless in zip(table.itertuples(), no_time):
        colour, marker = style[row.label]
        x = edge if timeless else row.unlearn_seconds
        if bars:
            ax.errorbar(x, row.nomus, yerr=_bar(row.nomus_ci), fmt="none", ecolor=colour, elinewidth=0.8, capsize=2,
                        alpha=0.6)
        _point(ax, x, row.nomus, row.label, colour, NO_TIME_MARKER if timeless else marker)
    note = f"; {NO_TIME_SYMBOL} at the left edge: no unlearn time ({', '.join(table.loc[no_time, 'label'])})" \
        if no_time.any() else ""
    spread = table["nomus_ci"].fillna(0) if bars else 0
    lowest = np.nanmin(table["nomus"] - spread) if table["nomus"].notna().any() else 0.0
    ax.set(xscale="log", xlim=(edge / 1.6, right), ylim=(min(max(0.0, float(lowest) - 0.05), 0.9), TOP),
           ylabel="NoMUS (higher is better)", title="NoMUS against cost")
    ax.set_xlabel(f"unlearn seconds (log scale){note}", fontsize="small" if note else None)


def _point(ax: Axes, x: float, y: float, label: str, colour, marker: str) -> None:
    reference = label in REFERENCE_STYLE
    ax.scatter([x], [y], s=110 if reference else 45, color=colour, marker=marker, edgecolors="white", linewidths=0.5,
               zorder=3 if reference else 2, label=label)


def draw_board(key: tuple, cells: pd.DataFrame, path: Path) -> Path | None:
    """Draw the board of `cells` into `path`; None when it has no finished row."""
    figure = board_figure(key, cells)
    if figure is None:
        return None
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
