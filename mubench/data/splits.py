"""Splits as uint8 image tensors, their preprocessing, and the batch loader every loop uses."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterator

import torch

from mubench.core import accel
from mubench.core.losses import TaskKind

ROLES = ("retain", "forget", "val", "test")
# Where a task's protocol has a separate set of non-members for the MIA (the MUFAC/MUCAC notebooks' "unseen"),
# it is this optional role; otherwise `test` serves both utility accuracy and the MIA.
OPTIONAL_ROLES = ("unseen",)
HELD_OUT = ("val", "test", "unseen")
MIN_FORGOTTEN_HELD_OUT = 10  # a shrunk class-wise split keeps this many held-out images of the forgotten classes


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, C, H, W], decoded once
    labels: torch.Tensor  # int64 [N] (multiclass) or float32 [N, A] (multilabel)
    ids: tuple[str, ...]
    # Copies of images and labels on other devices, made by `on()`; never pickled (a Ray task gets the CPU tensors).
    _copies: dict[str, "Split"] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> "Split":
        return Split(self.images[index], self.labels[index], tuple(self.ids[i] for i in index.tolist()))

    def concat(self, other: "Split") -> "Split":
        """This split followed by `other` (retain ∪ forget: what the Original trains on)."""
        return Split(torch.cat([self.images, other.images]), torch.cat([self.labels, other.labels]),
                     self.ids + other.ids)

    def on(self, device: torch.device | str) -> "Split":
        """This split with its tensors on `device`: copied there on the first call, the same copy after (images
        and labels are never changed in place once decoded)."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if self.images.device == device:
            return self
        if str(device) not in self._copies:
            self._copies[str(device)] = Split(self.images.to(device), self.labels.to(device), self.ids)
        return self._copies[str(device)]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_copies": {}}


@dataclass(frozen=True)
class Preprocess:
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale
    std: tuple[float, ...]
    augment: str = "none"  # "none" | "flip" | "crop-flip" | "flip-affine-jitter": training batches only

    def to_input(self, images: torch.Tensor, augment: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        x = images.float().div_(255.0)
        if augment and self.augment != "none":
            x = _augment(x, self.augment, generator)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def input_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (low, high) of valid pixels in the normalised space, shaped [1, C, 1, 1]."""
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return (0.0 - mean) / std, (1.0 - mean) / std


def _augment(x: torch.Tensor, kind: str, generator: torch.Generator | None) -> torch.Tensor:
    """Random draws come from `generator` on the CPU whatever the device of `x`, so a batch on the GPU is augmented
    exactly as the same batch on the CPU."""
    n, _, h, w = x.shape
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    if kind == "crop-flip":
        pad = max(1, h // 8)
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
        offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
        x = torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])
    elif kind == "flip-affine-jitter":
        x = _color_jitter(_affine(x, generator), generator)
    return x


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def _affine(x: torch.Tensor, generator: torch.Generator | None, shear: float = 10.0,
            scale: tuple[float, float] = (0.8, 1.2), degrees: float = 10.0) -> torch.Tensor:
    """torchvision's RandomAffine(0, shear=shear, scale=scale) then RandomRotation(degrees), drawn per image."""
    n = x.shape[0]
    s = _uniform(n, *scale, generator)
    sx = _uniform(n, -shear, shear, generator)  # a scalar shear draws the x angle only
    rot = _uniform(n, -degrees, degrees, generator)
    return _warp(x, s, sx, rot)


def _warp(x: torch.Tensor, scale: torch.Tensor, shear_deg: torch.Tensor, angle_deg: torch.Tensor) -> torch.Tensor:
    """Scale and x-shear (torchvision's affine with angle 0), then rotate counter-clockwise, each image about its
    centre; bilinear, outside pixels 0 (torchvision's fill); one inverse warp of the whole batch."""
    n, _, h, w = x.shape
    sx, rot = torch.deg2rad(shear_deg.double()), torch.deg2rad(angle_deg.double())
    s = scale.double()
    # Forward maps in centred pixel units, x right and y down: affine s·[[1, −tan sx], [0, 1]], then rotation.
    affine = torch.zeros(n, 2, 2, dtype=torch.float64)
    affine[:, 0, 0], affine[:, 0, 1], affine[:, 1, 1] = s, -s * torch.tan(sx), s
    cos, sin = torch.cos(rot), torch.sin(rot)
    rotation = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    inverse = torch.linalg.inv(rotation @ affine)  # grid_sample wants output → input
    # Normalised coordinates scale x by 2/w and y by 2/h: conjugate the pixel-space inverse by that scaling.
    half = torch.tensor([w / 2.0, h / 2.0], dtype=torch.float64)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, :, :2] = inverse * (half.view(1, 1, 2) / half.view(1, 2, 1))
    grid = torch.nn.functional.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _color_jitter(x: torch.Tensor, generator: torch.Generator | None, strength: float = 0.2) -> torch.Tensor:
    """torchvision's ColorJitter(brightness, contrast, saturation = strength) on [0, 1] RGB batches: each factor
    uniform in [1 − strength, 1 + strength] per image, results clamped to [0, 1]; torchvision draws the order of
    the three per call, here it is fixed (brightness, contrast, saturation)."""
    n = x.shape[0]
    factors = [_uniform(n, 1 - strength, 1 + strength, generator).to(x.device, x.dtype).view(n, 1, 1, 1)
               for _ in range(3)]
    brightness, contrast, saturation = factors
    x = (x * brightness).clamp_(0, 1)
    grey = _grey(x)
    x = (contrast * x + (1 - contrast) * grey.mean(dim=(1, 2, 3), keepdim=True)).clamp_(0, 1)
    x = (saturation * x + (1 - saturation) * _grey(x)).clamp_(0, 1)
    return x


def _grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, as torchvision's rgb_to_grayscale, shaped [N, 1, H, W]."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


@dataclass
class Splits:
    """The four roles of one task, with what is needed to turn them into model inputs."""
    task: str
    kind: TaskKind
    num_outputs: int
    preprocess: Preprocess
    split_hash: str  # SHA-256 of the split manifest
    retain: Split
    forget: Split
    val: Split
    test: Split
    notes: dict = field(default_factory=dict)
    unseen: Split | None = None  # the MIA's non-members where the protocol has them; None: `test` serves
    identities: dict[str, str] = field(default_factory=dict)  # image id -> person or family, where the data has them
    scenario: str = "random"  # what is forgotten: mubench.data.scenarios
    forgotten_classes: tuple[int, ...] = ()  # the classes a class-wise scenario forgets (empty otherwise)

    def role(self, name: str) -> Split:
        """A role's split; `unseen` falls back to `test` on tasks that have no separate one."""
        if name == "unseen" and self.unseen is None:
            return self.test
        return getattr(self, name)

    def roles(self) -> tuple[str, ...]:
        """The roles this task really has: the four, and `unseen` where it is separate from `test`."""
        return ROLES + (("unseen",) if self.unseen is not None else ())

    def shrunk(self, caps: dict[str, int], seed: int = 0) -> "Splits":
        """A seeded subsample of each role (the smoke preset)."""
        g = torch.Generator().manual_seed(seed)
        parts = {}
        for name in self.roles():
            split = self.role(name)
            keep = torch.randperm(len(split), generator=g)[: caps.get(name, caps["test"])]
            if self.forgotten_classes and name in HELD_OUT:  # enough held-out images of the forgotten classes for
                forgotten = torch.isin(split.labels, torch.tensor(self.forgotten_classes))  # the MIA's 10 folds
                keep = torch.cat([keep, torch.nonzero(forgotten).flatten()[:MIN_FORGOTTEN_HELD_OUT]]).unique()
            parts[name] = split.subset(keep.sort().values)
        digest = hashlib.sha256(f"{self.split_hash}:{sorted(caps.items())}:{seed}".encode()).hexdigest()
        return Splits(self.task, self.kind, self.num_outputs, self.preprocess, digest, **parts,
                      notes={**self.notes, "shrunk_from": self.split_hash}, identities=self.identities,
                      scenario=self.scenario, forgotten_classes=self.forgotten_classes)


class BatchLoader:
    """Batches of (input, target) on `device`; shuffling is seeded and differs per epoch.

    Where the fast path is on for `device` (mubench.core.accel: CUDA), the split's uint8 images live on the device,
    copied there once, and are normalised and augmented there; shuffling and augmentation draw from the same CPU
    generator either way, so the batches hold the same images with the same flips, crops and warps.
    """

    def __init__(self, split: Split, preprocess: Preprocess, batch_size: int, *, shuffle: bool = False,
                 augment: bool = False, seed: int = 0, device: torch.device | str = "cpu",
                 drop_last: bool = False):
        self.split, self.preprocess = split, preprocess
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.device, self.drop_last = torch.device(device), drop_last
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.split)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        split = self.split.on(self.device) if accel.fast_on(self.device) else self.split
        n = len(split)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for b in range(len(self)):
            index = order[b * self.batch_size:(b + 1) * self.batch_size].to(split.images.device)
            x = self.preprocess.to_input(split.images[index], self.augment, self.generator)
            yield (accel.prepare_input(x.to(self.device, non_blocking=True)),
                   split.labels[index].to(self.device, non_blocking=True))
