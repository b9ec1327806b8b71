"""MUFAC: age in 8 classes from Korean family faces at 128×128 (Choi & Na, github.com/ndb796/MachineUnlearning).

The committed manifest (splits/mufac.json) is a rule: image names are not public, so it pins the rule
(forget = the first 1,500 rows of the train CSV), the release's row counts and family ranges; the ids are
derived from the data root's CSVs and their hash joins the manifest's in the split hash.

Roles (source → mubench), following DLFD's code (`MUFAC_loader.py` and `age_cls_experiments.ipynb` in
github.com/Dasol-Choi/DLFD): the first 1,500 rows of `custom_train_dataset.csv` → forget, the other 8,525 → retain;
`custom_test_dataset.csv` (1,504) → test, which serves utility accuracy and the MIA's non-members alike (DLFD
reports both on it: their Original's 0.63298 is 952/1504), so the task has no separate `unseen`;
`custom_val_dataset.csv` (1,539) → val, what DLFD's training loop and dynamic monitor read. (The MUFAC benchmark
notebooks instead report accuracy on the val CSV; boards here follow DLFD.)

Preprocessing follows DLFD's `MUFAC_loader.py`: ImageNet mean/std normalisation, and on training batches a
horizontal flip, RandomAffine(0, shear=10, scale=(0.8, 1.2)), RandomRotation(10) and ColorJitter(0.2, 0.2, 0.2)
(mubench's "flip-affine-jitter"), batch 32 as their notebook.

Where mubench departs from the authors' code on purpose: DLFD trains its references for 100 epochs with
CosineAnnealingLR(T_max=200) stepped once per batch (`trainer.py`), so over ~314 batches an epoch the rate cycles
between 0.01 and 0 about 78 times; mubench trains 30 epochs with the rate divided by 10 at epochs 10 and 20, one
recipe for Original and Retrain alike.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from mubench.data.splits import ROLES, Preprocess, Splits
from mubench.core.errors import MubenchError
from mubench.data.images import (DecodeSpec, Listing, build_splits, check_disjoint, check_on_disk, missing_file,
                            read_rule_manifest, require_root, write_rule_manifest)
from mubench.core.losses import TaskKind
from mubench.data.tasks import Task, register_task
from mubench.data.tasks import Recipe

log = logging.getLogger(__name__)

RELEASE_DIR = "custom_korean_family_dataset_resolution_128"
COLUMNS = ("family_id", "person_id", "age_class", "image_path")
AGE_CLASSES = "abcdefgh"  # 0–6, 7–12, 13–19, 20–30, 31–45, 46–55, 56–66, 67–80 years
RELEASE = {  # part -> (csv, image folder, rows in the release, (first family, last family))
    "train": ("custom_train_dataset.csv", "train_images", 10025, (1, 299)),
    "val": ("custom_val_dataset.csv", "val_images", 1539, (801, 850)),
    "test": ("custom_test_dataset.csv", "test_images", 1504, (851, 900)),
}
FORGET_ROWS = 1500


def rule_manifest() -> dict:
    parts = {part: {"csv": csv, "images": folder, "rows": rows, "families": list(fams)}
             for part, (csv, folder, rows, fams) in RELEASE.items()}
    train_rows = RELEASE["train"][2]
    return {
        "task": "mufac",
        "kind": "rule",
        "pinned": "the rule per role, the release's CSV names, row counts and family ranges (all public)",
        "derived": "image names and labels, read from the data root's CSVs in their row order",
        "release": parts,
        "roles": {
            "retain": {"part": "train", "rows": "after the first forget rows", "count": train_rows - FORGET_ROWS},
            "forget": {"part": "train", "rows": "the first forget rows", "count": FORGET_ROWS},
            "val": {"part": "val", "rows": "all", "count": RELEASE["val"][2]},
            "test": {"part": "test", "rows": "all", "count": RELEASE["test"][2]},
        },
        "partial_root": "a root whose CSVs do not hold the release's row counts (e.g. a test fixture) is loaded "
                        "with forget = the first round(1500 × train rows / 10025) rows and flagged partial",
    }


def release_folder(root: Path) -> Path:
    nested = root / RELEASE_DIR
    return nested if nested.is_dir() else root


def read_part(folder: Path, part: str, root: Path, families: tuple[int, int]) -> pd.DataFrame:
    csv, images, _, _ = RELEASE[part]
    path = folder / csv
    if not path.is_file():
        raise missing_file(path, "MUFAC label file", "mufac", root)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MubenchError(f"MUFAC label file {str(path)!r} is not a readable CSV ({exc}); expected columns "
                           f"{', '.join(COLUMNS)}.") from None
    absent = [c for c in COLUMNS if c not in frame.columns]
    if absent:
        raise MubenchError(f"MUFAC label file {str(path)!r} has columns {list(frame.columns)}; expected an unnamed "
                           f"index then {', '.join(COLUMNS)}.")
    frame["label"] = [AGE_CLASSES.find(a.strip().lower()) if len(a.strip()) == 1 else -1 for a in frame.age_class]
    bad = frame.index[frame.label < 0]
    if len(bad):
        raise MubenchError(f"MUFAC label file {str(path)!r} row {bad[0] + 1} has age_class "
                           f"{frame.age_class[bad[0]]!r}, outside the task's range a–h.")
    numbers = [re.fullmatch(r"F?0*(\d+)", f.strip()) for f in frame.family_id]
    first, last = families
    for row, (match, text) in enumerate(zip(numbers, frame.family_id)):
        if match is None or not first <= int(match.group(1)) <= last:
            raise MubenchError(f"MUFAC label file {str(path)!r} row {row + 1} has family_id {text!r}; the {part} "
                               f"file holds families F{first:04d}–F{last:04d}.")
    frame["family"] = [int(m.group(1)) for m in numbers]
    frame["file"] = [folder / images / name.strip() for name in frame.image_path]
    return frame


def listing(root: Path, manifest: dict) -> Listing:
    folder = release_folder(root)
    parts = {p: read_part(folder, p, root, tuple(spec["families"])) for p, spec in manifest["release"].items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = set(parts[a].family) & set(parts[b].family)
        if shared:
            raise MubenchError(f"MUFAC files {RELEASE[a][0]!r} and {RELEASE[b][0]!r} in {str(folder)!r} share "
                               f"family F{min(shared):04d}; families must be disjoint across train, val and test.")
    rows = {p: len(frame) for p, frame in parts.items()}
    full = all(rows[p] == spec["rows"] for p, spec in manifest["release"].items())
    forget_rows = manifest["roles"]["forget"]["count"]
    if not full:
        forget_rows = max(1, round(forget_rows * rows["train"] / manifest["release"]["train"]["rows"]))
        log.warning("MUFAC root %s holds %s rows, not the release's %s: loaded as a partial root with the first "
                    "%d train rows as forget", folder, rows, {p: s["rows"] for p, s in manifest["release"].items()},
                    forget_rows)
    train = parts["train"]
    frames = {"retain": train.iloc[forget_rows:], "forget": train.iloc[:forget_rows],
              "val": parts["val"], "test": parts["test"]}
    return Listing(ids={r: [name.strip() for name in frames[r].image_path] for r in ROLES},
                   files={r: list(frames[r].file) for r in ROLES},
                   labels={r: frames[r].label.tolist() for r in ROLES},
                   notes={"partial": not full, "rows": rows, "root": str(folder)},
                   identities={name.strip(): f"F{family:04d}" for r in ROLES
                               for name, family in zip(frames[r].image_path, frames[r].family)})


@register_task("mufac")
class Mufac(Task):
    """Age in 8 classes (MUFAC, Korean family faces, 128×128); needs --data-root.

    Roles (DLFD's MUFAC_loader.py): forget = the first 1,500 train-CSV rows, retain = the other 8,525; test = the
    test CSV (1,504), for utility accuracy and the MIA's non-members alike; val = the val CSV (1,539), for monitoring.
    """
    kind = TaskKind.MULTICLASS
    num_outputs = 8
    has_identities = True  # families
    label_names = ("0-6", "7-12", "13-19", "20-30", "31-45", "46-55", "56-66", "67-80")  # years
    # DLFD's age_cls_experiments.ipynb: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 32, from scratch. In
    # place of their 100 epochs of per-batch cyclic cosine, mubench's own 30 epochs with lr ÷10 at 10 and 20.
    recipe = Recipe(epochs=30, batch_size=32, lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="step",
                    milestones=(10, 20), augment=True)
    # DLFD's MUFAC_loader.py: Resize(128), ImageNet Normalize; training batches flipped, affine-warped (shear 10,
    # scale 0.8–1.2), rotated (10°) and colour-jittered (0.2 brightness, contrast, saturation).
    preprocess = Preprocess((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), augment="flip-affine-jitter")
    decode = DecodeSpec(size=128, native=(128, 128))

    def load(self, data_root: Path | None) -> Splits:
        root = require_root(data_root, "mufac")
        manifest, digest = read_rule_manifest("mufac")
        found = listing(root, manifest)
        check_disjoint(found, release_folder(root))
        check_on_disk(found, release_folder(root))
        return build_splits("mufac", "mufac", self.kind, self.num_outputs, self.preprocess, found, digest,
                            self.decode)


def regenerate_manifest() -> str:
    """Rewrite the committed rule manifest (it must come out byte-identical; a test checks)."""
    return write_rule_manifest(Path(__file__).parent / "splits" / "mufac.json", rule_manifest())
