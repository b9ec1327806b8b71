"""Figures of a grid, drawn with matplotlib's Agg canvas (no pyplot, no display) under `<out>/plots/` and logged
to MLflow: per cell, forget vs test per-sample losses of Original, Retrain and the method (the DLFD paper's
Figure 5), and the model's penultimate features on a fixed subsample of retain, forget and test. From those
features `mubench report` draws, per task × backbone × seed, a t-SNE of every model on the board (the paper's
Figures 2 and 4): one t-SNE per model was most of a run's figure time, spent on a figure only the report shows.

A figure that cannot be drawn never fails its cell: the scores are the benchmark, a figure is a view of them.
The error is logged as a warning and tagged `mubench.plot_error` on the run that lacks the figure.
"""
from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import torch
from matplotlib.figure import Figure
from threadpoolctl import threadpool_limits
from torch import nn

from mubench.scores import metrics
from mubench.data.splits import BatchLoader, Split, Splits
from mubench.core.store import TAG, features_npz, losses_png, seed_folder

log = logging.getLogger(__name__)

REFERENCES = {"original": "Original", "retrain": "Retrain"}  # label -> panel title
TSNE_SAMPLES = {"retain": 100, "forget": 100, "test": 100}  # points per role, the same subsample for every model
ROLE_COLOURS = {"retain": "tab:blue", "forget": "tab:red", "test": "tab:green"}
SUBSAMPLE_SEED = 0
TSNE_ITERATIONS = 400  # sklearn's minimum is 250 (early exaggeration); its default 1000 costs 2.5x for 300 points
PANELS_PER_ROW = 4




class SeedPlots:
    """The figures of one task × backbone × seed: Original's and Retrain's losses once, then one call per cell
    (`cell`) and one when the seed's cells are done (`finish`)."""

    def __init__(self, out: Path, splits: Splits, backbone: str, preset: str, seed: int, refs, device: torch.device):
        self.folder = seed_folder(out, splits.task, backbone, preset, seed, splits.scenario)
        self.splits, self.seed, self.refs, self.device = splits, seed, refs, device
        self.subsample, self.roles = fixed_subsample(splits)
        self.reference_losses: dict[str, dict[str, np.ndarray]] = {}
        self.seconds = 0.0  # time spent here, for the cost of plotting

    def cell(self, label: str, model: nn.Module, losses: dict[str, np.ndarray]) -> None:
        """After scoring a cell: its losses figure and its subsample features, artifacts of the active cell run."""
        if label in REFERENCES:
            self.reference_losses.setdefault(label, {r: losses[r] for r in ("forget", "test")})
        with self._guard(f"cell {label}"):
            panels = {title: self._losses_of(ref) for ref, title in REFERENCES.items()}
            panels[label] = losses
            path = self.folder / losses_png(label)
            draw_losses(panels, path, f"{self.folder.parent.name} · seed {self.seed} · {label}")
            mlflow.log_artifact(str(path), "plots")
        with self._guard(f"features of {label}"):
            path = self.folder / features_npz(label)
            np.savez(path, features=penultimate(model, self.subsample, self.splits, self.device), roles=self.roles)
            mlflow.log_artifact(str(path), "plots")

    def finish(self) -> None:
        """After the seed's last cell. Nothing is left to draw (the t-SNE is the report's); says what plotting
        cost."""
        log.debug("plots for %s: %.2f s", self.folder, self.seconds)

    def _losses_of(self, reference: str) -> dict[str, np.ndarray]:
        if reference not in self.reference_losses:
            model = self.refs.original if reference == "original" else self.refs.retrained
            self.reference_losses[reference] = {
                role: metrics.losses_and_accuracy(model, self.splits.role(role), self.splits.kind,
                                                  self.splits.preprocess, self.device)[0]
                for role in ("forget", "test")}
        return self.reference_losses[reference]

    @contextmanager
    def _guard(self, what: str):
        """Time a plotting step; turn its failure into a warning and a run tag instead of a failed cell."""
        started = time.perf_counter()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            yield
        except Exception as exc:
            message = f"plot for {what} in {self.folder} skipped: {type(exc).__name__}: {exc}"
            log.warning(message)
            try:
                mlflow.set_tag(f"{TAG}plot_error", message[:5000])
            except Exception:  # a store that cannot take a tag fails the cell elsewhere, not here
                pass
        finally:
            self.seconds += time.perf_counter() - started


def fixed_subsample(splits: Splits) -> tuple[Split, np.ndarray]:
    """The same seeded retain/forget/test subsample for every model of a split, and each point's role."""
    generator = torch.Generator().manual_seed(SUBSAMPLE_SEED)
    parts, roles = [], []
    for role, count in TSNE_SAMPLES.items():
        split = splits.role(role)
        keep = torch.randperm(len(split), generator=generator)[:count].sort().values
        parts.append(split.subset(keep))
        roles += [role] * len(keep)
    joined = Split(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]),
                   tuple(i for p in parts for i in p.ids))
    return joined, np.array(roles)


@torch.no_grad()
def penultimate(model: nn.Module, subset: Split, splits: Splits, device: torch.device) -> np.ndarray:
    if not callable(getattr(model, "features", None)):
        raise TypeError(f"{type(model).__name__} has no features(x) method, so its penultimate features are unknown")
    model.eval()
    batches = [model.features(x).flatten(1).float().cpu() for x, _ in BatchLoader(subset, splits.preprocess, 256,
                                                                                   device=device)]
    return torch.cat(batches).numpy()


def draw_losses(panels: dict[str, dict[str, np.ndarray]], path: Path, title: str) -> None:
    """One panel per model: densities of log10 per-sample loss on forget (members) and test (non-members), on a
    shared axis (trained-on samples sit near zero loss, which a linear axis would squash into one bin)."""
    logged = {name: {role: np.log10(np.maximum(np.asarray(losses[role], float).ravel(), 1e-8))
                     for role in ("forget", "test")} for name, losses in panels.items()}
    values = np.concatenate([v for roles in logged.values() for v in roles.values()])
    low, high = (float(values.min()), float(values.max())) if len(values) else (-1.0, 1.0)
    bins = np.linspace(low, max(high, low + 1e-3), 40)
    figure = Figure(figsize=(3.6 * len(panels), 3.0))
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.17, top=0.8, wspace=0.25)
    axes = figure.subplots(1, len(panels), sharex=True, squeeze=False)[0]
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


def draw_tsne(features: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> None:
    """One panel per model ({name: (points, each point's role)}), each its own 2-D t-SNE (fixed random_state) of
    the same subsample."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    columns = min(PANELS_PER_ROW, len(features))
    rows = math.ceil(len(features) / columns)
    figure = Figure(figsize=(3.2 * columns, 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    with threadpool_limits(1):  # t-SNE on 300 points is slower with threads competing for the cores
        for ax, (name, (points, roles)) in zip(axes, features.items()):
            reduced = PCA(min(50, *points.shape), random_state=0).fit_transform(points)
            perplexity = min(30.0, (len(points) - 1) / 3)
            embedded = TSNE(2, perplexity=perplexity, init="pca", random_state=0, max_iter=TSNE_ITERATIONS,
                            n_jobs=1).fit_transform(reduced)
            for role, colour in ROLE_COLOURS.items():
                mask = roles == role
                ax.scatter(embedded[mask, 0], embedded[mask, 1], s=6, c=colour, label=role, alpha=0.7)
            ax.set_title(name)
            ax.set_xticks([])
            ax.set_yticks([])
    for ax in axes[len(features):]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small", markerscale=2)
    figure.suptitle(title)
    figure.savefig(path, dpi=90)


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
