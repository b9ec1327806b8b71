"""scikit-learn's handwritten digits: the embedded default task, no download needed.

Each 8×8 image is mixed with a fixed draw of uniform noise (`noise`, default 0.6 of every pixel; seeded, the same
for every run). On the clean digits a ResNet-18 generalises to almost every held-out image with a loss as small as
on its training images (median 1.7e-6 held out vs 1.1e-6 trained, val accuracy 0.98), so the membership that
unlearning should remove is not there to measure: the Original's paper FS on forget vs val was 0.039, under the 0.167
no-signal FS at those sizes, and no scale-free attack saw more. The noise gives each image something only it has,
as a face's lighting, background and pose are, which training memorises and a held-out image does not share; on val
(seeds 0 and 1; members forget, non-members val) the Original's FS then reads 0.306 and 0.300 and Retrain's 0.022 and
0.039, under the floor, with val accuracy 0.73–0.74, near where the face tasks' Originals sit; noise 0.5 left the
Original at 0.20 (val accuracy 0.87), noise 0.65 gave 0.42 (val accuracy 0.65). Noise at 32 px (σ 0.5, or half
uniform) was ignored by the network (FS 0.10 and 0.06), as was training on half of retain (0.05).
`--task-set digits.noise=0` gives the clean digits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from mubench.data.splits import ROLES, Preprocess, Split, Splits
from mubench.core.errors import MubenchError
from mubench.core.ranges import Range
from mubench.core.losses import TaskKind
from mubench.data.tasks import Task, read_manifest, register_task, write_manifest
from mubench.data.tasks import Recipe

SPLIT_SEED = 0
NOISE_SEED = 0


@dataclass(frozen=True)
class DigitsOptions:
    noise: Annotated[float, Range(0, 1, hi_open=True)] = 0.6  # share of fixed uniform noise in each pixel of the 8×8 images; 0: the clean digits

    def __post_init__(self):
        if not 0 <= self.noise < 1:
            raise MubenchError(f"--task-set digits.noise={self.noise} is outside [0, 1): it is the share of noise "
                               f"in each pixel (0: the clean digits).")


def with_noise(images: np.ndarray, noise: float) -> np.ndarray:
    """The 8×8 images (0–16) mixed with a fixed draw of uniform noise on the same range."""
    if not noise:
        return images
    return (1 - noise) * images + noise * np.random.RandomState(NOISE_SEED).uniform(0, 16, images.shape)


def make_manifest() -> dict[str, list[str]]:
    """Stratified, seeded: test 20 %, val 10 %, train 70 %; forget = 15 % of train, retain the rest."""
    labels = load_digits().target
    ids = np.arange(len(labels))
    rest, test = train_test_split(ids, test_size=0.20, stratify=labels, random_state=SPLIT_SEED)
    train, val = train_test_split(rest, test_size=0.10 / 0.80, stratify=labels[rest], random_state=SPLIT_SEED)
    retain, forget = train_test_split(train, test_size=0.15, stratify=labels[train], random_state=SPLIT_SEED)
    parts = {"retain": retain, "forget": forget, "val": val, "test": test}
    return {role: [str(i) for i in sorted(parts[role].tolist())] for role in ROLES}


@register_task("digits")
class Digits(Task):
    kind = TaskKind.MULTICLASS
    num_outputs = 10
    needs_data_root = False
    Options = DigitsOptions
    # No augmentation and a cosine schedule to near-zero training loss: the original memorises its
    # training set (and each image's noise) as an honest recipe does, so the MIA has a signal to remove.
    recipe = Recipe(epochs=20, batch_size=64, lr=0.02, momentum=0.9, weight_decay=5e-4, schedule="cosine")
    image_size = 32

    def load(self, data_root: Path | None = None) -> Splits:
        roles, digest = read_manifest("digits")
        digits = load_digits()
        images = with_noise(digits.images, self.options.noise)
        pixels = torch.from_numpy(images).float().unsqueeze(1) / 16.0  # [N, 1, 8, 8] in [0, 1]
        pixels = F.interpolate(pixels, size=self.image_size, mode="bilinear", align_corners=False)
        images = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
        labels = torch.from_numpy(digits.target).long()
        parts = {}
        for role in ROLES:
            index = torch.tensor([int(i) for i in roles[role]])
            parts[role] = Split(images[index], labels[index], tuple(roles[role]))
        return Splits("digits", self.kind, self.num_outputs, Preprocess((0.5,) * 3, (0.5,) * 3), digest, **parts)



def regenerate_manifest() -> str:
    """Rewrite the committed manifest (it must come out byte-identical; a test checks)."""
    return write_manifest("digits", make_manifest(), Path(__file__).parent / "splits" / "digits.json")
