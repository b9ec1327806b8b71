"""scikit-learn's handwritten digits: the embedded default task, no download needed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from mubench.data.splits import ROLES, Preprocess, Split, Splits
from mubench.core.losses import TaskKind
from mubench.data.tasks import Task, read_manifest, register_task, write_manifest
from mubench.data.tasks import Recipe

SPLIT_SEED = 0


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
    # No augmentation and a cosine schedule to near-zero training loss: the original memorises its
    # training set as an honest recipe does, so the MIA has a signal to remove.
    recipe = Recipe(epochs=20, batch_size=64, lr=0.02, momentum=0.9, weight_decay=5e-4, schedule="cosine")
    image_size = 32

    def load(self, data_root: Path | None = None) -> Splits:
        roles, digest = read_manifest("digits")
        digits = load_digits()
        pixels = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0  # [N, 1, 8, 8] in [0, 1]
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
