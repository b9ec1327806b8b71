"""Helpers several unlearning methods share. Methods import from here, never from each other."""
from __future__ import annotations

import copy
import math
from typing import Iterable, Iterator

import torch
import torchvision
from torch import nn

from mubench.unlearn.api import UnlearnData
from mubench.data.splits import BatchLoader, Split
from mubench.core.errors import MubenchError
from mubench.core.losses import TaskKind


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy of `model` in eval mode with no gradients: a teacher that never changes."""
    return copy.deepcopy(model).eval().requires_grad_(False)


def endless(loader: Iterable) -> Iterator:
    """Batches of `loader` forever, reshuffled on every pass (unlike itertools.cycle, which replays one pass)."""
    while True:
        yield from loader


def retain_subset(data: UnlearnData, fraction: float, seed: int) -> Split:
    """A seeded random `fraction` of retain (at least one sample), in retain's order."""
    if not 0 < fraction <= 1:
        raise MubenchError(f"retain_fraction={fraction} must be in (0, 1].")
    keep = torch.randperm(len(data.retain), generator=torch.Generator().manual_seed(seed))
    return data.retain.subset(keep[:max(1, round(fraction * len(data.retain)))].sort().values)


def split_loader(split: Split, data: UnlearnData, batch_size: int, seed: int, *, augment: bool = True) -> BatchLoader:
    """A shuffled, augmented loader over `split` (e.g. a retain subset) with the task's preprocessing and device."""
    return BatchLoader(split, data.preprocess, batch_size or data.batch_size, shuffle=True, augment=augment,
                       seed=seed, device=data.device)


def last_stages(model: nn.Module, k: int, method: str) -> list[nn.Module]:
    """The modules of the last `k` stages of `model.stages()` (k counts from the output end, head included)."""
    if not callable(getattr(model, "stages", None)):
        raise MubenchError(f"{method} needs a model with stages() (a mubench Classifier); "
                           f"got a {type(model).__name__}.")
    stages = model.stages()
    if not 1 <= k <= len(stages):
        names = ", ".join(name for name, _ in stages)
        raise MubenchError(f"{method}.k={k} is out of range; this backbone has {len(stages)} stages ({names}), "
                           f"so k must be between 1 and {len(stages)}.")
    return [module for _, modules in stages[-k:] for module in modules]


# --- Re-initialisation as torchvision builds each family ------------------------------------------------
# torchvision's constructors (models/resnet.py, densenet.py, efficientnet.py) initialise their modules as below,
# not with PyTorch's per-layer `reset_parameters()` defaults (kaiming-uniform with a = √5 for convolutions).

def _resnet_init(module: nn.Module) -> bool:
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        module.reset_parameters()  # ResNet leaves its fc at PyTorch's default
    else:
        return False
    return True


def _densenet_init(module: nn.Module) -> bool:
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight)  # fan_in, as torchvision's DenseNet
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        module.reset_parameters()
        nn.init.zeros_(module.bias)
    else:
        return False
    return True


def _efficientnet_init(module: nn.Module) -> bool:
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        bound = 1.0 / math.sqrt(module.out_features)
        nn.init.uniform_(module.weight, -bound, bound)
        nn.init.zeros_(module.bias)
    else:
        return False
    return True


def init_rule(model: nn.Module):
    """The torchvision initialiser for `model`'s family (its `body`, for a mubench Classifier); ResNet's otherwise."""
    body = getattr(model, "body", model)
    if isinstance(body, torchvision.models.DenseNet):
        return _densenet_init
    if isinstance(body, torchvision.models.EfficientNet):
        return _efficientnet_init
    return _resnet_init


@torch.no_grad()
def reinitialise(model: nn.Module, modules: Iterable[nn.Module] | None = None) -> None:
    """Re-initialise `modules` (default: all of `model`) in place as torchvision builds `model`'s family.

    Convolutions: kaiming-normal (fan_out for ResNet / EfficientNet, fan_in for DenseNet); normalisation layers:
    weight 1, bias 0, running statistics reset; Linear: as the family's constructor does. Any other module
    with parameters falls back to its own `reset_parameters()`.
    """
    rule = init_rule(model)
    for root in (model,) if modules is None else modules:
        for module in root.modules():
            if rule(module):
                continue
            if isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm)):
                if module.weight is not None:
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)
                if getattr(module, "track_running_stats", False):
                    module.reset_running_stats()
            elif callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()


# --- Random relabelling (random-label, SalUn) -------------------------------------------------------------

def wrong_labels(labels: torch.Tensor, num_outputs: int, multilabel: bool,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """A label that is never the true one. Multiclass: uniform over the other `num_outputs − 1` classes
    ((y + U{1..C−1}) mod C). Multilabel: every attribute flipped (1 − y)."""
    if multilabel:
        return 1 - labels
    if num_outputs < 2:
        raise MubenchError(f"relabelling needs at least 2 classes; this task has {num_outputs}.")
    shift = torch.randint(1, num_outputs, labels.shape, generator=generator).to(labels.device)
    return (labels + shift) % num_outputs


class RelabelledForgetThenRetain:
    """One epoch: every forget batch with freshly drawn wrong labels (`wrong_labels`), then every retain batch
    with its true labels: the order of SalUn's official random-label loop (OPTML-Group/Unlearn-Saliency,
    Classification/unlearn/RL.py, CIFAR-10 branch)."""

    def __init__(self, forget: BatchLoader, retain: BatchLoader, num_outputs: int, multilabel: bool, seed: int = 0):
        if len(forget) == 0:
            raise MubenchError("random relabelling needs a non-empty forget set.")
        self.forget, self.retain = forget, retain
        self.num_outputs, self.multilabel = num_outputs, multilabel
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.forget) + len(self.retain)

    def __iter__(self):
        for x, y in self.forget:
            yield x, wrong_labels(y, self.num_outputs, self.multilabel, self.generator)
        yield from self.retain

    @classmethod
    def of(cls, data: UnlearnData, batch_size: int, seed: int) -> "RelabelledForgetThenRetain":
        """Shuffled, augmented forget and retain loaders of `data` (batch_size 0: the task recipe's)."""
        size = batch_size or None
        return cls(data.loader("forget", shuffle=True, augment=True, batch_size=size, seed=seed),
                   data.loader("retain", shuffle=True, augment=True, batch_size=size, seed=seed),
                   data.num_outputs, data.kind == TaskKind.MULTILABEL, seed=seed)
