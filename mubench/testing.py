"""Small, fast stand-ins for a real cell, for method tests and for the conformance kit.

`toy_cell()` gives a tiny synthetic task (multiclass or multilabel), a small CNN with the same
`Classifier` interface as the real backbones (features(), stages()), trained on retain ∪ forget
until it memorises, and the `UnlearnData` / `UnlearnContext` a method receives.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from mubench.api import UnlearnContext, UnlearnData
from mubench.backbones import Classifier, make_head
from mubench.data import Preprocess, Split, Splits
from mubench.harness import make_monitor
from mubench.losses import TaskKind
from mubench.training import Recipe, train_reference

TOY_SIZES = {"retain": 96, "forget": 32, "val": 32, "test": 32}


def toy_splits(kind: TaskKind = TaskKind.MULTICLASS, num_outputs: int = 4, image_size: int = 12,
               seed: int = 0, sizes: dict[str, int] | None = None) -> Splits:
    """Class-dependent patterns plus heavy noise: learnable, yet memorisable sample by sample."""
    sizes = sizes or TOY_SIZES
    g = torch.Generator().manual_seed(seed)
    patterns = torch.rand(num_outputs, 3, image_size, image_size, generator=g)
    parts = {}
    for role, n in sizes.items():
        if kind == TaskKind.MULTICLASS:
            labels = torch.arange(n) % num_outputs
            signal = patterns[labels]
        else:
            labels = (torch.rand(n, num_outputs, generator=g) < 0.5).float()
            signal = (labels[:, :, None, None, None] * patterns[None]).sum(1) / num_outputs
        pixels = (0.25 * signal + 0.75 * torch.rand(n, 3, image_size, image_size, generator=g)).clamp(0, 1)
        parts[role] = Split((pixels * 255).round().to(torch.uint8), labels, tuple(f"{role}-{i}" for i in range(n)))
    return Splits(f"toy-{kind.value}", kind, num_outputs, Preprocess((0.5,) * 3, (0.5,) * 3), "toy", **parts)


def toy_model(num_outputs: int, width: int = 16, seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    body = nn.Sequential(OrderedDict(
        conv1=nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()),
        layer1=nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()),
        layer2=nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width),
                             nn.ReLU()),
        pool=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())))
    return Classifier(body, make_head(2 * width, num_outputs, "linear"), ["conv1", "layer1", "layer2"])


TOY_RECIPE = Recipe(epochs=30, batch_size=32, lr=0.05, schedule="cosine")


@dataclass
class ToyCell:
    splits: Splits
    original: nn.Module
    retrained: nn.Module
    data: UnlearnData
    seed: int

    def context(self, monitor=None, log=None) -> UnlearnContext:
        """A fresh context; `monitor` overrides the real one (e.g. to script FS readings)."""
        return UnlearnContext(
            device=torch.device("cpu"), seed=self.seed, quiet=True,
            _monitor=monitor or make_monitor(self.splits.forget, self.splits.val, self.splits.kind,
                                                 self.splits.preprocess, torch.device("cpu")),
            _retrained=lambda: (copy.deepcopy(self.retrained), 1.0),
            _log_metric=log or (lambda name, value, step: None))

    def model(self) -> nn.Module:
        """A private copy of the original, as the harness hands it to a method."""
        return copy.deepcopy(self.original)


_CELLS: dict = {}


def toy_cell(kind: TaskKind = TaskKind.MULTICLASS, seed: int = 0) -> ToyCell:
    """A trained toy cell (cached per process: training takes a few seconds)."""
    key = (kind, seed)
    if key not in _CELLS:
        splits = toy_splits(kind, seed=seed)
        num = splits.num_outputs
        train_set = Split(torch.cat([splits.retain.images, splits.forget.images]),
                          torch.cat([splits.retain.labels, splits.forget.labels]),
                          splits.retain.ids + splits.forget.ids)
        models = {}
        for role, data in (("original", train_set), ("retrain", splits.retain)):
            models[role] = toy_model(num, seed=seed)
            train_reference(models[role], data, kind, splits.preprocess, TOY_RECIPE, torch.device("cpu"), seed)
        data = UnlearnData(splits.retain, splits.forget, splits.val, kind, num, splits.preprocess,
                           TOY_RECIPE.batch_size, torch.device("cpu"))
        _CELLS[key] = ToyCell(splits, models["original"], models["retrain"], data, seed)
    return _CELLS[key]
