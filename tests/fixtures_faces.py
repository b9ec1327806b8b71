"""Tiny synthetic data roots in each face dataset's released layout, written at test time (never real data).

Images are small noise with a label-dependent tint, saved with PIL; label files are written the way each
release writes them (pandas CSV with its unnamed index, RAF-DB's list file, CelebA's attribute file).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()


def write_image(path: Path, label: int, size: int = 32, seed: int = 0, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    tint = np.array([(label * 37) % 256, (label * 91) % 256, (label * 53) % 256], dtype=np.float64)
    pixels = (0.5 * rng.integers(0, 256, (size, size, 3)) + 0.5 * tint).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels, "RGB")
    (image if mode == "RGB" else image.convert(mode)).save(path)
    return path


def make_mufac(root: Path, train: int = 14, val: int = 4, test: int = 4, size: int = 128) -> Path:
    """custom_korean_family_dataset_resolution_128/ with three CSVs and three image folders."""
    base = root / "custom_korean_family_dataset_resolution_128"
    parts = {"train": (train, 1, 299), "val": (val, 801, 50), "test": (test, 851, 50)}
    for part, (rows, first_family, families) in parts.items():
        per_family = max(4, -(-rows // families))  # stay inside the part's family range
        records = []
        for i in range(rows):
            family, letter = first_family + i // per_family, "abcdefgh"[i % 8]
            name = f"F{family:04d}_AGE_D_{18 + i}_{letter}{i % 4 + 1}.jpg"
            write_image(base / f"{part}_images" / name, i % 8, size, seed=hash((part, i)) % 2**32)
            records.append({"family_id": f"F{family:04d}", "person_id": "D", "age_class": letter,
                            "image_path": name})
        pd.DataFrame(records).to_csv(base / f"custom_{part}_dataset.csv")  # with the unnamed index, as released
    return root


RAFDB_SMALL = (20, 4)  # train, test images: DLFD's rule gives val 2, retain 12, forget 6


def rafdb_label(number: int) -> int:
    """A label 1–7 for train/test image `number` that is not monotone in the number, so the ImageFolder order (label
    folder, then name) differs from the name order."""
    return (number * 3) % 7 + 1


def rafdb_items(train: int, test: int) -> list[tuple[str, int]]:
    """(release name, label 1–7) for the first `train` train and `test` test images of RAF-DB basic."""
    return ([(f"train_{i:05d}.jpg", rafdb_label(i)) for i in range(1, train + 1)]
            + [(f"test_{i:04d}.jpg", rafdb_label(i)) for i in range(1, test + 1)])


def make_rafdb(root: Path, train: int = RAFDB_SMALL[0], test: int = RAFDB_SMALL[1], size: int = 24,
               images: bool = True) -> Path:
    """The official layout: basic/EmoLabel/list_patition_label.txt and basic/Image/aligned/*_aligned.jpg."""
    items = rafdb_items(train, test)
    aligned = root / "basic" / "Image" / "aligned"
    aligned.mkdir(parents=True, exist_ok=True)
    for i, (name, label) in enumerate(items):
        if images:
            write_image(aligned / name.replace(".jpg", "_aligned.jpg"), label, size, i)
    (root / "basic" / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "basic" / "EmoLabel" / "list_patition_label.txt").write_text(
        "".join(f"{name} {label}\n" for name, label in items))
    return root


def make_rafdb_folders(root: Path, train: int = RAFDB_SMALL[0], test: int = RAFDB_SMALL[1], size: int = 24,
                       images: bool = True) -> Path:
    """The folder layout: DATASET/{train,test}/<1..7>/*_aligned.jpg (empty files when not `images`)."""
    for i, (name, label) in enumerate(rafdb_items(train, test)):
        path = root / "DATASET" / name.split("_")[0] / str(label) / name.replace(".jpg", "_aligned.jpg")
        if images:
            write_image(path, label, size, i)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    return root


CELEBA_SMALL = {"test": 4, "forget": 4, "retain": 6, "val": 3, "unseen": 3}
IDENTITY_START = {"test": 3, "forget": 200, "retain": 1300, "val": 4700, "unseen": 5000}  # inside the MUCAC ranges


def make_celeba(root: Path, per_role: dict[str, int] | None = None, size: int = 48, layout: str = "notebooks") -> Path:
    """CelebAMask-HQ images with CelebA-HQ-identity.txt and CelebA-HQ-attribute.txt. Layout "notebooks" (the MUCAC
    notebooks' working folder): the two .txt files in the root beside CelebAMask-HQ/CelebA-HQ-img/; "flat": all three
    in the root."""
    per_role = per_role or CELEBA_SMALL
    images = root / "CelebAMask-HQ" / "CelebA-HQ-img" if layout == "notebooks" else root / "CelebA-HQ-img"
    rows, identities, n = [], [], 0
    for role, count in per_role.items():
        for i in range(count):
            name = f"{n}.jpg"
            values = ["1" if (n * 7 + k * 3) % 5 < 2 else "-1" for k in range(len(CELEBA_ATTRIBUTES))]
            write_image(images / name, n % 2, size, n)
            identities.append(f"{name} {IDENTITY_START[role] + i // 2}")
            rows.append(f"{name} " + " ".join(values))
            n += 1
    (root / "CelebA-HQ-identity.txt").write_text("\n".join(identities) + "\n")
    (root / "CelebA-HQ-attribute.txt").write_text(
        f"{len(rows)}\n" + " ".join(CELEBA_ATTRIBUTES) + "\n" + "\n".join(rows) + "\n")
    return root


def make_imagefolder(root: Path, classes: int = 3, per_class: int = 8, split: bool = False, size: int = 20) -> Path:
    """<root>/<class>/*.png, or train/<class>/ and test/<class>/ when `split`."""
    for c in range(classes):
        for i in range(per_class):
            part = ("test" if i % 4 == 0 else "train") if split else ""
            write_image(root / part / f"class_{c}" / f"img_{i:03d}.png", c, size, c * 100 + i)
    return root
