"""Figures read without the table, checked on the matplotlib Figure: the board picture (a colour and a legend entry
per method, axes within each metric's range, rows without unlearn time kept on the log-time panel, interval bars
only over several seeds), the losses figure's shared axes, and the t-SNE coloured by class with the role as marker."""
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.container import ErrorbarContainer

from mubench.boards.figures import ROLE_COLOURS, draw_losses, draw_tsne
from mubench.boards.scatter import board_figure
from mubench.core.store import BoardKey

KEY = BoardKey("digits", "resnet18", "smoke")
METHODS = tuple(f"method-{i:02d}" for i in range(12))  # more than tab10 holds


def board_cells(seeds: int, methods=METHODS, zero_time=("method-03",)) -> pd.DataFrame:
    """One finished cell per row label and seed: the references, then `methods`; Original timed as the runs time it
    (a few microseconds), the `zero_time` methods at 0 s."""
    generator = np.random.default_rng(0)
    rows = []
    for i, label in enumerate(("original", "retrain", *methods)):
        seconds = 1e-5 if label == "original" else 0.0 if label in zero_time else 0.5 * (i + 1)
        for seed in range(seeds):
            nomus = min(1.0, 0.55 + 0.03 * i + 0.3 * generator.random())  # wide intervals reach past 1
            rows.append({"status": "FINISHED", "label": label, "method": label, "seed": str(seed), "base": label,
                         "variant": "", "test_acc": 0.6 + 0.3 * generator.random(), "fs": 0.3 * generator.random(),
                         "nomus": nomus, "unlearn_seconds": seconds})
    return pd.DataFrame(rows)


def point_colours(collections) -> set[str]:
    return {to_hex(colour, keep_alpha=False) for c in collections for colour in c.get_facecolors()}


def same_marker(a, b) -> bool:
    first, second = a.get_paths()[0].vertices, b.get_paths()[0].vertices
    return first.shape == second.shape and np.allclose(first, second)


@pytest.mark.parametrize("seeds", [1, 3])
def test_the_board_names_every_method_in_its_own_colour_within_each_metrics_range(seeds):
    figure = board_figure(KEY, board_cells(seeds))
    utility, cost = figure.axes[:2]
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert all(label in legend for label in METHODS)
    assert any(text.startswith("Original") for text in legend) and any(text.startswith("Retrain") for text in legend)
    methods = [c for c in utility.collections if c.get_label() in METHODS]
    assert len(methods) == len(METHODS) and len(point_colours(methods)) == len(METHODS)
    assert point_colours(c for c in utility.collections if c.get_label() in ("original", "retrain")).isdisjoint(
        point_colours(methods))
    assert -0.05 <= utility.get_xlim()[0] and utility.get_xlim()[1] <= 1.05 and utility.get_ylim()[1] <= 1.05
    assert 0 <= cost.get_ylim()[0] and cost.get_ylim()[1] <= 1.05


def test_a_one_seed_board_has_no_interval_bars_and_says_so():
    figure = board_figure(KEY, board_cells(1))
    assert not [c for ax in figure.axes for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert "no interval bars" in figure.get_suptitle() and "95 %" not in figure.get_suptitle()


def test_a_board_over_seeds_has_interval_bars_and_says_so():
    figure = board_figure(KEY, board_cells(3))
    bars = [c for c in figure.axes[0].containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2 + len(METHODS)
    assert "means over 3 seeds, bars = 95 % intervals" in figure.get_suptitle()


def test_rows_without_unlearn_time_sit_on_the_left_edge_of_the_time_panel_and_are_named():
    figure = board_figure(KEY, board_cells(1))
    cost = figure.axes[1]
    points = {c.get_label(): c for c in cost.collections}
    assert set(points) == {"original", "retrain", *METHODS}
    left = cost.get_xlim()[0]
    for label in ("original", "method-03"):
        assert left < points[label].get_offsets()[0][0] < 2 * left, label
    assert min(points[label].get_offsets()[0][0] for label in ("retrain", "method-00")) > 3 * left
    assert same_marker(points["original"], points["method-03"])
    assert not same_marker(points["original"], points["retrain"]) and not same_marker(points["method-03"],
                                                                                       points["method-00"])
    named = cost.get_xlabel().split("no unlearn time (")[1].rstrip(")")
    assert sorted(named.split(", ")) == ["method-03", "original"]


def test_the_nomus_iso_lines_are_labelled_on_the_top_edge_away_from_the_points():
    utility = board_figure(KEY, board_cells(1)).axes[0]
    assert not utility.texts  # no label inside the panel
    top = utility.child_axes[0] if utility.child_axes else None
    assert top is not None and [t.get_text() for t in top.get_xticklabels()] == ["0.5", "0.6", "0.7", "0.8", "0.9",
                                                                                 "1.0"]


def test_the_losses_panels_share_both_axes(tmp_path):
    generator = np.random.default_rng(0)
    panels = {name: {"forget": generator.lognormal(0, spread, 60), "test": generator.lognormal(0, spread, 60)}
              for name, spread in (("Original", 0.1), ("Retrain", 1.0), ("method", 3.0))}
    figure = draw_losses(panels, tmp_path / "losses.png", "losses")
    assert len({ax.get_ylim() for ax in figure.axes}) == 1 and len({ax.get_xlim() for ax in figure.axes}) == 1


def tsne_features(labels: np.ndarray | None) -> dict[str, tuple]:
    generator = np.random.default_rng(0)
    roles = np.array(["retain"] * 20 + ["forget"] * 10 + ["test"] * 15)
    points = generator.normal(size=(len(roles), 16)).astype(np.float32)
    return {"Original": (points, roles) if labels is None else (points, roles, labels)}


def test_the_tsne_colours_points_by_class_and_marks_the_forget_points(tmp_path):
    labels = np.arange(45) % 7
    ax = draw_tsne(tsne_features(labels), tmp_path / "tsne.png", "t-SNE").axes[0]
    assert len(point_colours(ax.collections)) == 7
    retain, test, forget = ax.collections
    assert forget.get_sizes()[0] > 2 * retain.get_sizes()[0] and to_hex(forget.get_edgecolors()[0]) == "#000000"
    assert not same_marker(retain, test) and same_marker(retain, forget)


def test_a_multi_label_tsne_colours_by_the_first_attribute(tmp_path):
    labels = np.stack([np.arange(45) % 2, np.ones(45)], axis=1).astype(np.float32)
    figure = draw_tsne(tsne_features(labels), tmp_path / "tsne.png", "t-SNE")
    assert len(point_colours(figure.axes[0].collections)) == 2
    assert "attribute 0 = 1" in [t.get_text() for legend in figure.legends for t in legend.get_texts()]


def test_features_saved_without_labels_are_coloured_by_role(tmp_path):
    ax = draw_tsne(tsne_features(None), tmp_path / "tsne.png", "t-SNE").axes[0]
    assert point_colours(ax.collections) == {to_hex(colour) for colour in ROLE_COLOURS.values()}
