"""RAF-DB basic: emotion in 7 classes, from the official list-file layout or the class-folder layout.

The committed manifest (splits/rafdb.json) pins every public file name to its role: RAF-DB's names are
deterministic (train_00001.jpg … train_12271.jpg, test_0001.jpg … test_3068.jpg), so every user gets the same
seeded DLFD split. A root holding fewer images (e.g. a test fixture) is loaded as the manifest restricted to the
names it holds, flagged partial.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from mubench.data import ROLES, Preprocess, Splits
from mubench.errors import MubenchError
from mubench.images import (IMAGE_SUFFIXES, DecodeSpec, Listing, build_splits, check_disjoint, check_labels,
                            check_on_disk, missing_file, require_root)
from mubench.losses import TaskKind
from mubench.tasks import Task, read_manifest, register_task, write_manifest
from mubench.training import Recipe

log = logging.getLogger(__name__)

TRAIN_IMAGES, TEST_IMAGES = 12271, 3068
SPLIT_SEED = 0
LIST_FILE = Path("EmoLabel") / "list_patition_label.txt"  # sic: the release's spelling
EMOTIONS = ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral")  # labels 1–7 → 0–6
NAME = re.compile(r"(train_\d{5}|test_\d{4})(_aligned)?\.jpg")


def make_manifest() -> dict[str, list[str]]:
    """DLFD protocol: a seeded shuffle of the train list; val = first 10 %; of the rest forget 30 %, retain 70 %."""
    train = np.array([f"train_{i:05d}.jpg" for i in range(1, TRAIN_IMAGES + 1)])
    order = np.random.RandomState(SPLIT_SEED).permutation(len(train))
    n_val = int(0.1 * len(train))
    rest = order[n_val:]
    n_forget = int(0.3 * len(rest))
    parts = {"val": order[:n_val], "forget": rest[:n_forget], "retain": rest[n_forget:]}
    roles = {role: sorted(train[parts[role]].tolist()) for role in ("retain", "forget", "val")}
    roles["test"] = [f"test_{i:04d}.jpg" for i in range(1, TEST_IMAGES + 1)]
    return {role: roles[role] for role in ROLES}


def _official(root: Path) -> Path | None:
    for base in (root / "basic", root):
        if (base / LIST_FILE).is_file():
            return base
    return None


def _folders(root: Path) -> Path | None:
    for base in (root / "DATASET", root):
        if (base / "train").is_dir() and (base / "test").is_dir():
            return base
    return None


def read_list(base: Path) -> tuple[dict[str, int], Path]:
    """Official layout: name -> label (0–6) from the list file, and the aligned-image folder."""
    path = base / LIST_FILE
    labels: dict[str, int] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not NAME.fullmatch(fields[0]) or not fields[1].lstrip("-").isdigit():
            raise MubenchError(f"RAF-DB list file {str(path)!r} line {number} reads {line.strip()!r}; expected "
                               f"'<train_NNNNN.jpg|test_NNNN.jpg> <label 1–7>'.")
        if fields[0] in labels:
            raise MubenchError(f"RAF-DB list file {str(path)!r} lists {fields[0]!r} twice (line {number}); each "
                               f"image must appear once.")
        check_labels([int(fields[1])], range(1, 8), path, f"label on line {number}")
        labels[fields[0]] = int(fields[1]) - 1
    return labels, base / "Image" / "aligned"


def _aligned_name(name: str) -> str:
    return name[:-len(".jpg")] + "_aligned.jpg"


def scan_folders(base: Path) -> tuple[dict[str, int], dict[str, Path], int]:
    """Folder layout: name -> label and name -> file from <train|test>/<1..7>/*.jpg; also files ignored."""
    labels, files, ignored = {}, {}, 0
    for part in ("train", "test"):
        for folder in sorted(p for p in (base / part).iterdir() if p.is_dir()):
            if folder.name not in {str(i) for i in range(1, 8)}:
                raise MubenchError(f"RAF-DB folder {str(folder)!r} is not a label; expected class folders 1–7 "
                                   f"under {str(base / part)!r}.")
            for file in sorted(folder.iterdir()):
                match = NAME.fullmatch(file.name)
                if file.suffix.lower() not in IMAGE_SUFFIXES or match is None:
                    ignored += 1
                    continue
                name = match.group(1) + ".jpg"
                if not name.startswith(part):
                    raise MubenchError(f"RAF-DB image {str(file)!r} is a {name.split('_')[0]} image under "
                                       f"{part}/; train and test images must not mix.")
                if name in labels:
                    raise MubenchError(f"RAF-DB image {name!r} appears twice, in {str(files[name].parent)!r} "
                                       f"and {str(folder)!r}; each image must have one label.")
                labels[name], files[name] = int(folder.name) - 1, file
    return labels, files, ignored


def listing(root: Path, roles: dict[str, list[str]]) -> tuple[Listing, Path]:
    official, folders = _official(root), _folders(root)
    if official is not None:
        labels, image_dir = read_list(official)
        if not image_dir.is_dir():
            raise missing_file(image_dir, "RAF-DB aligned image folder", "rafdb", root)
        files = {name: image_dir / _aligned_name(name) for name in labels}
        listed = {f.name for f in files.values()}
        ignored = sum(1 for f in image_dir.iterdir() if f.name not in listed)
        source = official / LIST_FILE
    elif folders is not None:
        labels, files, ignored = scan_folders(folders)
        source = folders
    else:
        raise missing_file(root / "basic" / LIST_FILE, "RAF-DB list file (or DATASET/train and DATASET/test "
                           "class folders)", "rafdb", root)
    role_of = {name: role for role in ROLES for name in roles[role]}
    unknown = [name for name in labels if name not in role_of]
    if unknown:
        raise MubenchError(f"{str(source)!r} names {unknown[0]!r}, which is not in the RAF-DB basic release "
                           f"(train_00001–train_{TRAIN_IMAGES:05d}, test_0001–test_{TEST_IMAGES:04d}).")
    full = len(labels) == TRAIN_IMAGES + TEST_IMAGES
    if not full:
        log.warning("RAF-DB root %s holds %d of the release's %d images: loaded as a partial root, the committed "
                    "split restricted to them", root, len(labels), TRAIN_IMAGES + TEST_IMAGES)
    if ignored:
        log.warning("%d files under %s are not in the RAF-DB list and were ignored", ignored, source)
    ids = {role: [name for name in roles[role] if name in labels] for role in ROLES}
    return Listing(ids=ids, files={r: [files[n] for n in ids[r]] for r in ROLES},
                   labels={r: [labels[n] for n in ids[r]] for r in ROLES},
                   notes={"partial": not full, "ignored_files": ignored, "root": str(source)}), source


@register_task("rafdb")
class RafDb(Task):
    """Emotion in 7 classes (RAF-DB basic; list-file or class-folder layout); needs --data-root."""
    kind = TaskKind.MULTICLASS
    num_outputs = 7
    label_names = EMOTIONS
    # The DLFD code (spec/baselines.md): from scratch, SGD lr 0.01, momentum 0.9, wd 5e-4, 100 epochs, last
    # checkpoint (no schedule); batch 64 as its RAF-DB notebook.
    recipe = Recipe(epochs=100, batch_size=64, lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="constant",
                    augment=True)
    # DLFD: greyscale replicated to 3 channels, 128×128, horizontal flip on training batches; the spec records
    # no normalisation for it, so the symmetric 0.5/0.5 of the digits task.
    preprocess = Preprocess((0.5,) * 3, (0.5,) * 3, augment="flip")
    decode = DecodeSpec(size=128, grey=True)  # aligned images are 100×100; the folder copies vary

    def load(self, data_root: Path | None) -> Splits:
        root = require_root(data_root, "rafdb")
        roles, digest = read_manifest("rafdb")
        found, source = listing(root, roles)
        check_disjoint(found, source)
        check_on_disk(found, source)
        return build_splits("rafdb", "rafdb", self.kind, self.num_outputs, self.preprocess, found, digest,
                            self.decode)


def regenerate_manifest() -> str:
    """Rewrite the committed manifest (it must come out byte-identical; a test checks)."""
    return write_manifest("rafdb", make_manifest(), Path(__file__).parent / "splits" / "rafdb.json")

