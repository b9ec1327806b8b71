"""The figures' drawing, with matplotlib's Agg canvas (no pyplot, no display): a cell's forget vs test per-sample
losses of Original, Retrain and the method (the DLFD paper's Figure 5), which a run draws while its cells run
(mubench.run.cell_figures), and the t-SNE of every model on a board and the per-example attack scores, which
`mubench report` draws from what the runs left (one t-SNE per model was most of a run's figure time, spent on a
figure only the report shows).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from threadpoolctl import threadpool_limits

from mubench.core.store import REFERENCES


REFERENCE_TITLES = {label: label.capitalize() for label in REFERENCES}  # label -> panel title
ROLE_COLOURS = {"retain": "tab:blue", "forget": "tab:red", "test": "tab:green"}
TSNE_ITERATIONS = 400  # sklearn's minimum is 250 (early exaggeration); its default 1000 costs 2.5x for 300 points
PANELS_PER_ROW = 4
ROLE_MARKERS = {"retain": {"marker": "o", "s": 10}, "test": {"marker": "^", "s": 14},
                "forget": {"marker": "o", "s": 40, "edgecolors": "black", "linewidths": 0.8}}  # forget drawn on top
CLASS_LEGEND_MAX = 20  # more classes than this are not named one by one




def draw_losses(panels: dict[str, dict[str, np.ndarray]], path: Path, title: str) -> Figure:
    """One panel per model: densities of log10 per-sample loss on forget (members) and test (non-members), on
    shared axes (trained-on samples sit near zero loss, which a linear axis would squash into one bin)."""
    logged = {name: {role: np.log10(np.maximum(np.asarray(losses[role], float).ravel(), 1e-8))
                     for role in ("forget", "test")} for name, losses in panels.items()}
    values = np.concatenate([v for roles in logged.values() for v in roles.values()])
    low, high = (float(values.min()), float(values.max())) if len(values) else (-1.0, 1.0)
    bins = np.linspace(low, max(high, low + 1e-3), 40)
    figure = Figure(figsize=(3.6 * len(panels), 3.0))
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.17, top=0.8, wspace=0.12)
    axes = figure.subplots(1, len(panels), sharex=True, sharey=True, squeeze=False)[0]
    for ax, (name, roles) in zip(axes, logged.items()):
        for role, data in roles.items():
            ax.hist(data, bins=bins, density=True, histtype="stepfilled", alpha=0.45, color=ROLE_COLOURS[role],
                    label=f"{role} (n={len(data)})")
        ax.set_title(name)
        ax.set_xlabel("log10 per-sample loss")
        ax.legend(fontsize="small")
    axes[0].set_ylabel("density")
    figure.suptitle(title)
    figure.savefig(path, dpi=90)
    return figure


def draw_tsne(features: dict[str, tuple[np.ndarray, ...]], path: Path, title: str) -> Figure:
    """One panel per model ({name: (points, each point's role[, each point's label])}), each its own 2-D t-SNE
    (fixed random_state) of the same subsample. Where every panel has labels, colour is the class and the marker the
    role, forget points large and edged black (do they leave their class's cluster?); else colour is the role."""
    classes, called = point_classes(features)
    colours = class_colours(np.concatenate(list(classes.values()))) if classes else {}
    columns = min(PANELS_PER_ROW, len(features))
    rows = math.ceil(len(features) / columns)
    figure = Figure(figsize=(3.2 * columns + (1.6 if classes else 0), 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    with threadpool_limits(1):  # t-SNE on 300 points is slower with threads competing for the cores
        for ax, (name, (points, roles, *_)) in zip(axes, features.items()):
            embedded = _embed(points)
            if classes:
                _scatter_classes(ax, embedded, roles, classes[name], colours)
            else:
                for role, colour in ROLE_COLOURS.items():
                    mask = roles == role
                    ax.scatter(embedded[mask, 0], embedded[mask, 1], s=6, c=colour, label=role, alpha=0.7)
            ax.set_title(name)
            ax.set_xticks([])
            ax.set_yticks([])
    for ax in axes[len(features):]:
        ax.set_visible(False)
    if classes:
        _class_legends(figure, colours, called)
    else:
        axes[0].legend(fontsize="small", markerscale=2)
    figure.suptitle(title)
    figure.savefig(path, dpi=90)
    return figure


def _embed(points: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    reduced = PCA(min(50, *points.shape), random_state=0).fit_transform(points)
    perplexity = min(30.0, (len(points) - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=0, max_iter=TSNE_ITERATIONS,
                n_jobs=1).fit_transform(reduced)


def point_classes(features: dict[str, tuple[np.ndarray, ...]]) -> tuple[dict[str, np.ndarray], str]:
    """Each panel's class per point, and what a class is called: the label, or a multi-label task's first attribute
    (0 or 1). Nothing where a panel has no labels (features saved before labels were)."""
    labels = {name: np.asarray(panel[2]) for name, panel in features.items() if len(panel) > 2}
    if not labels or len(labels) < len(features):
        return {}, ""
    multilabel = any(values.ndim == 2 for values in labels.values())
    return ({name: (values[:, 0] if values.ndim == 2 else values).astype(int) for name, values in labels.items()},
            "attribute 0 =" if multilabel else "class")


def class_colours(classes: np.ndarray) -> dict[int, tuple]:
    present = np.unique(classes)
    if len(present) > 20:
        return dict(zip(present.tolist(), colormaps["turbo"](np.linspace(0, 1, len(present)))))
    palette = colormaps["tab10" if len(present) <= 10 else "tab20"]
    return {value: palette(i) for i, value in enumerate(present.tolist())}


def _scatter_classes(ax: Axes, embedded: np.ndarray, roles: np.ndarray, classes: np.ndarray, colours: dict) -> None:
    for role, style in ROLE_MARKERS.items():
        mask = roles == role
        ax.scatter(embedded[mask, 0], embedded[mask, 1], c=[colours[c] for c in classes[mask]], alpha=0.8, **style)


def _class_legends(figure: Figure, colours: dict, called: str) -> None:
    roles = [Line2D([], [], ls="", color="0.6", ms=math.sqrt(style["s"]), marker=style["marker"],
                    mec=style.get("edgecolors", "0.6"), label=role) for role, style in ROLE_MARKERS.items()]
    figure.legend(handles=roles, loc="outside right upper", fontsize="small", title="marker = role",
                  title_fontsize="small")
    if len(colours) > CLASS_LEGEND_MAX:
        classes = [Patch(color="none", label=f"{len(colours)} classes")]
    else:
        classes = [Patch(color=colour, label=f"{called} {value}") for value, colour in colours.items()]
    figure.legend(handles=classes, loc="outside right lower", fontsize="small", title="colour = " + called.rstrip(" ="),
                  title_fontsize="small")


ATTACK_COLOURS = {"members": "tab:red", "nonmembers": "tab:green"}
ATTACK_ROLES = {"members": "forget (members)", "nonmembers": "held-out (non-members)"}


def draw_attack_scores(panels: dict[str, dict[str, np.ndarray]], path: Path, title: str) -> None:
    """One panel per model ({name: {"members": scores, "nonmembers": scores}}): densities of a per-example membership
    score (LiRA's log likelihood ratio) on forget (members) and held-out (non-members), on a shared axis."""
    values = np.concatenate([v for roles in panels.values() for v in roles.values()])
    finite = values[np.isfinite(values)]
    low, high = (float(np.percentile(finite, 0.5)), float(np.percentile(finite, 99.5))) if len(finite) else (-1., 1.)
    bins = np.linspace(low, max(high, low + 1e-3), 40)
    columns = min(PANELS_PER_ROW, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(3.6 * columns, 3.0 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True).ravel()
    for ax, (name, roles) in zip(axes, panels.items()):
        for role, scores in roles.items():
            ax.hist(np.clip(scores, low, high), bins=bins, density=True, histtype="stepfilled", alpha=0.45,
                    color=ATTACK_COLOURS[role], label=f"{ATTACK_ROLES[role]} (n={len(scores)})")
        ax.set_title(name)
        ax.set_xlabel("score (log likelihood ratio)")
        ax.legend(fontsize="small")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    figure.suptitle(title)
    figure.savefig(path, dpi=90)


def draw_recovery(curves: dict[str, list[float]], path: Path, title: str) -> Figure:
    """Relearning's recovery curves, one line per model ({name: held-out forget accuracy per step}); the Original and
    Retrain drawn black, dashed and dotted, so each method reads against them."""
    figure = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = figure.subplots()
    colours = iter(matplotlib_colours(len(curves)))
    for name, curve in curves.items():
        style = {"Original": dict(color="black", ls="--"), "Retrain": dict(color="black", ls=":")}.get(
            name, dict(color=next(colours)))
        ax.plot(range(len(curve)), curve, lw=1.6, label=name, **style)
    ax.set_xlabel("attacker's fine-tuning steps on 10 % of forget")
    ax.set_ylabel("accuracy on the other forget images")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.suptitle(title)
    figure.savefig(path, dpi=90)
    return figure


def draw_probe_accuracy(rows: dict[str, tuple[float, float]], path: Path, title: str) -> Figure:
    """Linear-probe test accuracy per row ({name: (mean, 95 % half-width)}), references first, bars with intervals."""
    figure = Figure(figsize=(max(5.0, 0.55 * len(rows) + 2), 4.0), layout="constrained")
    ax = figure.subplots()
    names = list(rows)
    means = [rows[n][0] for n in names]
    errors = [rows[n][1] if math.isfinite(rows[n][1]) else 0.0 for n in names]
    colours = ["black" if n in ("Original", "Retrain") else "tab:blue" for n in names]
    ax.bar(range(len(names)), means, yerr=errors, color=colours, alpha=0.8, capsize=3)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_ylabel("linear-probe test accuracy")
    ax.set_ylim(0, 1.02)
    figure.suptitle(title)
    figure.savefig(path, dpi=90)
    return figure


def matplotlib_colours(count: int) -> list:
    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(i % palette.N) for i in range(count)]
