"""RAF-DB basic: emotion in 7 classes, from the official list-file layout or the class-folder layout.

Split — DLFD's, derived from the release's labels at load time (Choi & Na, DLFD, `RAF_loader.py` in
github.com/Dasol-Choi/DLFD). Their loader builds a torchvision `ImageFolder` over `train/<1..7>/` (class folders
sorted by name, then files sorted by name), calls `random.seed(42)` and `random.shuffle` on the indices 0…n−1, and
takes val = the first int(0.1·n) shuffled indices, retain = the next int(0.7·(n − val)), forget = the rest: on the
release (n = 12,271) 1,227 / 7,730 / 3,314. Which image lands where depends on its label (the label sets the
ImageFolder order), so the committed manifest (splits/rafdb.json) pins the rule and its numbers, not a list of
names, and the same rule is applied to the list-file layout by ordering its train images as that ImageFolder would.
A root with fewer images than the release (a test fixture) gets the same rule over the images it has — what DLFD's
loader would do on it — and is flagged partial.

Roles (source → mubench): the shuffled train indices as above → retain / forget / val; the official test list
(3,068) → test, which serves utility accuracy and the MIA's non-members (DLFD's MIA reads its test loader), so
the task has no separate `unseen`. Monitoring and selection read val only.

Where mubench departs from the authors' code on purpose:
- DLFD's RAF-DB notebook (`emotion_cls_experiments.ipynb`) trains the Original with lr 0.01 and the Retrain with
  lr 0.1; mubench trains both references with one recipe (lr 0.01), so Retrain differs from Original only by the
  forget set.
- Their CosineAnnealingLR(T_max=200) is stepped once per batch (`trainer.py`), so over 100 epochs of ~173 batches
  the rate cycles between 0.01 and 0 about 43 times; mubench uses a constant rate.
- In `RAF_loader.py` every subset shares one ImageFolder and the last assignment to its `transform` is the test
  transform, so their training batches are not augmented (the train transform, with a 48×48 crop, never runs);
  mubench flips training batches horizontally.
"""
from __future__ import annotations

import logging
import random
import re
from pathlib import Path

from mubench.data.splits import ROLES, Preprocess, Splits
from mubench.core.errors import MubenchError
from mubench.data.images import (IMAGE_SUFFIXES, DecodeSpec, Listing, build_splits, check_disjoint, check_labels,
                            check_on_disk, missing_file, read_rule_manifest, require_root, write_rule_manifest)
from mubench.core.losses import TaskKind
from mubench.data.tasks import Task, register_task
from mubench.data.tasks import Recipe

log = logging.getLogger(__name__)

TRAIN_IMAGES, TEST_IMAGES = 12271, 3068
SPLIT_SEED = 42  # RAF_loader.py: get_data_loaders(..., val_split=0.1, retain_split=0.7, seed=42)
VAL_FRACTION, RETAIN_FRACTION = 0.1, 0.7
LIST_FILE = Path("EmoLabel") / "list_patition_label.txt"  # sic: the release's spelling
EMOTIONS = ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral")  # labels 1–7 → 0–6
NAME = re.compile(r"(train_(\d{5})|test_(\d{4}))(_aligned)?\.jpg")


def rule_manifest() -> dict:
    n_val = int(TRAIN_IMAGES * VAL_FRACTION)
    n_retain = int((TRAIN_IMAGES - n_val) * RETAIN_FRACTION)
    return {
        "task": "rafdb",
        "kind": "rule",
        "source": "DLFD, RAF_loader.py (github.com/Dasol-Choi/DLFD)",
        "pinned": "the rule that derives each role from the release's train labels, and the release's counts",
        "derived": "the images per role: the train images in torchvision ImageFolder order over train/<label>/, "
                   "shuffled by Python's random.seed(seed); random.shuffle(indices)",
        "release": {"train_images": TRAIN_IMAGES, "test_images": TEST_IMAGES},
        "rule": {"order": "class folder name (label 1-7) as a string, then file name",
                 "python_random_seed": SPLIT_SEED, "val_fraction": VAL_FRACTION,
                 "retain_fraction_of_rest": RETAIN_FRACTION},
        "roles": {
            "retain": {"part": "train", "indices": "the next int(retain_fraction × (n - val)) shuffled indices",
                       "count": n_retain},
            "forget": {"part": "train", "indices": "the remaining shuffled indices",
                       "count": TRAIN_IMAGES - n_val - n_retain},
            "val": {"part": "train", "indices": "the first int(val_fraction × n) shuffled indices", "count": n_val},
            "test": {"part": "test", "indices": "all", "count": TEST_IMAGES},
        },
        "partial_root": "a root with fewer images than the release (e.g. a test fixture) gets the same rule over "
                        "the train images it has and is flagged partial",
    }


def image_folder_order(labels: dict[str, int], files: dict[str, str]) -> list[str]:
    """The train names in the order torchvision's ImageFolder lists train/<1..7>/: folder names sorted as strings,
    then the file names in each folder sorted."""
    return sorted(labels, key=lambda name: (str(labels[name] + 1), files[name]))


def dlfd_split(ordered: list[str], rule: dict) -> dict[str, list[str]]:
    """RAF_loader.py's val / retain / forget over `ordered` (the ImageFolder order), in its Subset order."""
    indices = list(range(len(ordered)))
    random.Random(rule["python_random_seed"]).shuffle(indices)  # the same stream as random.seed(42); random.shuffle
    n_val = int(len(ordered) * rule["val_fraction"])
    n_retain = int((len(ordered) - n_val) * rule["retain_fraction_of_rest"])
    parts = {"val": indices[:n_val], "retain": indices[n_val:n_val + n_retain], "forget": indices[n_val + n_retain:]}
    return {role: [ordered[i] for i in index] for role, index in parts.items()}


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


def _in_release(name: str) -> bool:
    match = NAME.fullmatch(name)
    if match is None:
        return False
    number, limit = (match.group(2), TRAIN_IMAGES) if match.group(2) else (match.group(3), TEST_IMAGES)
    return 1 <= int(number) <= limit


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


def listing(root: Path, manifest: dict) -> tuple[Listing, Path]:
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
    unknown = [name for name in labels if not _in_release(name)]
    if unknown:
        raise MubenchError(f"{str(source)!r} names {unknown[0]!r}, which is not in the RAF-DB basic release "
                           f"(train_00001–train_{TRAIN_IMAGES:05d}, test_0001–test_{TEST_IMAGES:04d}).")
    train = {name: label for name, label in labels.items() if name.startswith("train_")}
    ids = dlfd_split(image_folder_order(train, {name: files[name].name for name in train}), manifest["rule"])
    ids["test"] = sorted(name for name in labels if name.startswith("test_"))
    release = manifest["release"]
    full = len(train) == release["train_images"] and len(ids["test"]) == release["test_images"]
    if not full:
        log.warning("RAF-DB root %s holds %d train and %d test images, not the release's %d and %d: loaded as a "
                    "partial root, DLFD's rule applied to the images it has", root, len(train), len(ids["test"]),
                    release["train_images"], release["test_images"])
    if ignored:
        log.warning("%d files under %s are not in the RAF-DB list and were ignored", ignored, source)
    return Listing(ids=ids, files={r: [files[n] for n in ids[r]] for r in ROLES},
                   labels={r: [labels[n] for n in ids[r]] for r in ROLES},
                   notes={"partial": not full, "ignored_files": ignored, "root": str(source)}), source


@register_task("rafdb")
class RafDb(Task):
    """Emotion in 7 classes (RAF-DB basic; list-file or class-folder layout); needs --data-root.

    Roles (DLFD, RAF_loader.py): retain / forget / val = DLFD's seeded shuffle of the train images (7,730 / 3,314 /
    1,227); test = the official test list (3,068), for utility accuracy and the MIA's non-members alike.
    """
    kind = TaskKind.MULTICLASS
    num_outputs = 7
    label_names = EMOTIONS
    # DLFD's Original (emotion_cls_experiments.ipynb): from scratch, SGD lr 0.01, momentum 0.9, wd 5e-4, 100 epochs,
    # batch 64, last checkpoint. Their per-batch cosine (T_max 200 steps, so it cycles) is replaced by a constant
    # rate, and their Retrain's lr 0.1 by this same recipe (see the module docstring).
    recipe = Recipe(epochs=100, batch_size=64, lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="constant",
                    augment=True)
    # RAF_loader.py: Resize(128), Grayscale(3 channels), Normalize(0.5, 0.5). Their training batches are not
    # augmented (shared-transform bug, see above); mubench flips them.
    preprocess = Preprocess((0.5,) * 3, (0.5,) * 3, augment="flip")
    decode = DecodeSpec(size=128, grey=True)  # aligned images are 100×100; the folder copies vary

    def load(self, data_root: Path | None) -> Splits:
        root = require_root(data_root, "rafdb")
        manifest, digest = read_rule_manifest("rafdb")
        found, source = listing(root, manifest)
        check_disjoint(found, source)
        check_on_disk(found, source)
        return build_splits("rafdb", "rafdb", self.kind, self.num_outputs, self.preprocess, found, digest,
                            self.decode)


def regenerate_manifest() -> str:
    """Rewrite the committed rule manifest (it must come out byte-identical; a test checks)."""
    return write_rule_manifest(Path(__file__).parent / "splits" / "rafdb.json", rule_manifest())
