"""What a run leaves for the figures while its cells run, per task × backbone × seed: each cell's losses figure
(forget vs test per-sample losses of Original, Retrain and the method: the DLFD paper's Figure 5) and its penultimate
features, roles and labels on a fixed subsample of retain, forget and test, from which `mubench report` draws the
t-SNE (the paper's Figures 2 and 4). Logged as artifacts of the cell's run; drawing is mubench.boards.figures'.

A figure that cannot be drawn never fails its cell: the scores are the benchmark, a figure is a view of them. The
error is logged as a warning and tagged `mubench.plot_error` on the run that lacks the figure.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import torch
from torch import nn

from mubench.boards import figures
from mubench.core.store import TAG, features_npz, losses_png, seed_folder
from mubench.data.splits import Split, Splits
from mubench.scores import metrics
from mubench.scores.metrics import penultimate

log = logging.getLogger(__name__)

TSNE_SAMPLES = {"retain": 100, "forget": 100, "test": 100}  # points per role, the same subsample for every model
SUBSAMPLE_SEED = 0


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
        if label in figures.REFERENCE_TITLES:
            self.reference_losses.setdefault(label, {r: losses[r] for r in ("forget", "test")})
        with self._guard(f"cell {label}"):
            panels = {title: self._losses_of(ref) for ref, title in figures.REFERENCE_TITLES.items()}
            panels[label] = losses
            path = self.folder / losses_png(label)
            figures.draw_losses(panels, path, f"{self.folder.parent.name} · seed {self.seed} · {label}")
            mlflow.log_artifact(str(path), "plots")
        with self._guard(f"features of {label}"):
            path = self.folder / features_npz(label)
            np.savez(path, features=penultimate(model, self.subsample, self.splits, self.device), roles=self.roles,
                     labels=self.subsample.labels.cpu().numpy())
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
