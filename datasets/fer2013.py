"""FER-2013: emotion in 7 classes from 48×48 greyscale faces, read from the common folder release.

Roles follow the FER-2013 challenge (Goodfellow et al. 2013, "Challenges in representation learning: a report on
three machine learning contests", ICML 2013 workshop): its Training set is the original training set (retain ∪
forget), its PublicTest set — the public leaderboard during the contest — is `val`, and its PrivateTest set — the
held-back final ranking — is `test`.

The folder release (`train/<emotion>/Training_<id>.jpg`, `test/<emotion>/PublicTest_<id>.jpg` and
`PrivateTest_<id>.jpg`; 28,709 + 3,589 + 3,589 images) has no label file: the emotion is the folder. The committed
manifest (splits/fer2013.json) lists every image of the release by its path relative to the release root (which
also pins its label: two Training ids occur under two emotions), written from the release's file list. Forget is a
seeded stratified 15 % of Training — MUFAC's share (1,500 of 10,025), the default of the digits and imagefolder
tasks too — and retain the rest. A root holding fewer images (e.g. a sample) is loaded as the manifest restricted
to the images it holds, flagged partial.

`fer2013-mini` is a fixed 1,820-image subset (200 Training images per emotion, 60 test-folder images per emotion,
seeded) with its own manifest (splits/fer2013-mini.json): retain / forget a seeded stratified 85 / 15 % of its 1,400
Training images (30 per emotion forgotten, 210 in all: about as many members as the MIA's 213 non-members), val =
its PublicTest images and test = its PrivateTest images, as on the full board — so that choosing a recipe on the
mini board's val never looks at an image either board tests on. It reads a root holding the full release or just
the subset, and needs every image of the subset.

Recipe (both tasks; ResNet18 from scratch on the 48×48 faces, greyscale replicated to the backbones' 3 channels),
chosen on the mini board's val only (207 PublicTest images; one seed, so differences of a few points are noise):
SGD momentum 0.9, wd 5e-4, batch 64, cosine schedule —
  30 epochs, lr 0.01, flips + shifts: val 0.372, train 0.774 (chosen)
  30 epochs, lr 0.01, flips only:     val 0.353, train 1.000
  40 epochs, lr 0.01, flips + shifts: val 0.309, train 0.906
  20 epochs, lr 0.01, flips + shifts: val 0.324, train 0.599
  30 epochs, lr 0.05, flips + shifts: val 0.314, train 0.457
One epoch over the mini board's 1,400 training images took 6.4 s on one CPU thread of a quiet machine: about 3
minutes per reference (the Original; Retrain sees 1,190 images).
"""
from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import numpy as np

from mubench.data.splits import ROLES, Preprocess, Splits
from mubench.core.errors import MubenchError
from mubench.data.images import (IMAGE_SUFFIXES, DecodeSpec, Listing, build_splits, check_disjoint, check_on_disk,
                            missing_file, require_root)
from mubench.core.losses import TaskKind
from mubench.data.tasks import Task, read_manifest, register_task, write_manifest
from mubench.data.tasks import Recipe

log = logging.getLogger(__name__)

# The challenge's label numbering (its CSV's `emotion` column 0–6); the folder release names the folders.
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
PARTS = {"train": re.compile(r"Training_\d+\.jpg"), "test": re.compile(r"(PublicTest|PrivateTest)_\d+\.jpg")}
FORGET_SHARE = 0.15  # of Training, stratified by emotion: MUFAC's share (1,500 / 10,025)
SPLIT_SEED = 0
NESTED = "fer2013"  # a root may hold the release one folder down, as the archive unpacks
ROLE_SOURCE = {"retain": "train/<emotion>/Training_*.jpg", "forget": "train/<emotion>/Training_*.jpg",
               "val": "test/<emotion>/PublicTest_*.jpg", "test": "test/<emotion>/PrivateTest_*.jpg"}


def emotion_of(path: str) -> str:
    return path.split("/")[1]


def stratified(paths: list[str], share: float, seed: int) -> tuple[list[str], list[str]]:
    """Per emotion (in label order), a seeded shuffle; the first round(share·n) are picked. Returns (picked, rest)."""
    rng = np.random.RandomState(seed)
    picked, rest = [], []
    for emotion in EMOTIONS:
        members = sorted(p for p in paths if emotion_of(p) == emotion)
        order = rng.permutation(len(members))
        take = round(share * len(members))
        picked += [members[i] for i in order[:take]]
        rest += [members[i] for i in order[take:]]
    return sorted(picked), sorted(rest)


def make_roles(paths: list[str]) -> dict[str, list[str]]:
    """Challenge roles for test/ (PublicTest → val, PrivateTest → test); a stratified forget share of train/."""
    forget, retain = stratified([p for p in paths if p.startswith("train/")], FORGET_SHARE, SPLIT_SEED)
    val = sorted(p for p in paths if p.startswith("test/") and p.split("/")[2].startswith("PublicTest_"))
    test = sorted(p for p in paths if p.startswith("test/") and p.split("/")[2].startswith("PrivateTest_"))
    return {"retain": retain, "forget": forget, "val": val, "test": test}


def release_paths(source: Path) -> list[str]:
    """Every image path relative to the release root: from a file list (a TSV whose first column is `path`) or by
    scanning a release folder."""
    if source.is_file():
        with source.open(newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        return sorted(row["path"] for row in rows)
    return sorted(scan(release_folder(source), "fer2013")[0])


def release_folder(root: Path) -> Path:
    nested = root / NESTED
    return nested if not (root / "train").is_dir() and nested.is_dir() else root


def scan(base: Path, task: str) -> tuple[dict[str, Path], int]:
    """path relative to the release root -> file, from train/<emotion>/ and test/<emotion>/; also files ignored."""
    found, ignored = {}, 0
    for part, pattern in PARTS.items():
        folder = base / part
        if not folder.is_dir():
            raise missing_file(folder, "FER-2013 folder", task, base)
        for sub in sorted(folder.iterdir()):
            if not sub.is_dir():
                ignored += 1
                continue
            if sub.name not in EMOTIONS:
                raise MubenchError(f"FER-2013 folder {str(sub)!r} is not an emotion; expected class folders "
                                   f"{', '.join(sorted(EMOTIONS))} under {str(folder)!r}.")
            for file in sorted(sub.iterdir()):
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    ignored += 1
                    continue
                if not pattern.fullmatch(file.name):
                    expected = ("Training_<id>.jpg" if part == "train"
                                else "PublicTest_<id>.jpg or PrivateTest_<id>.jpg")
                    raise MubenchError(f"FER-2013 image {str(file)!r} is not named as the release names {part}/ "
                                       f"images; expected {expected}.")
                found[f"{part}/{sub.name}/{file.name}"] = file
    return found, ignored


def _not_in_release(path: str, release: set[str], base: Path) -> MubenchError:
    elsewhere = sorted(p for p in release if p.split("/")[2] == path.split("/")[2])
    where = f" (the release has it as {elsewhere[0]!r})" if elsewhere else ""
    return MubenchError(f"FER-2013 image {str(base / path)!r} is not in the FER-2013 release{where}; the release "
                        f"holds train/<emotion>/Training_<id>.jpg and test/<emotion>/P*Test_<id>.jpg as listed in "
                        f"the committed manifest.")


def listing(root: Path, task: str, roles: dict[str, list[str]], release: set[str] | None) -> Listing:
    """The manifest's roles restricted to the images under root (fer2013) or all of them (fer2013-mini).

    `release` is the full release's paths when `roles` is a subset of it (the mini task): files of the release
    outside the subset are ignored, files outside the release refused."""
    base = release_folder(root)
    found, ignored = scan(base, task)
    role_of = {p: role for role in ROLES for p in roles[role]}
    known = release if release is not None else set(role_of)
    outside = [p for p in found if p not in known]
    if outside:
        raise _not_in_release(outside[0], known, base)
    total = len(role_of)
    if release is None:  # the full task: a partial root is the manifest restricted to what it holds
        if len(found) < total:
            log.warning("FER-2013 root %s holds %d of the release's %d images: loaded as a partial root, the "
                        "committed split restricted to them", base, len(found), total)
    else:  # the mini task: a fixed subset, all of it or nothing
        absent = [p for role in ROLES for p in roles[role] if p not in found]
        if absent:
            raise MubenchError(f"FER-2013 root {str(base)!r} lacks {len(absent)} of the {total} images of {task}, "
                               f"first {absent[0]!r}; {task} needs every image of its subset (point --data-root "
                               f"at the full release or a copy holding the subset).")
        ignored += len(found) - total
    ids = {role: [p for p in roles[role] if p in found] for role in ROLES}
    empty = [role for role in ROLES if not ids[role]]
    if empty:
        raise MubenchError(f"FER-2013 root {str(base)!r} holds no image of role {empty[0]!r} of {task} "
                           f"({ROLE_SOURCE[empty[0]]}); every role needs images.")
    if ignored:
        log.warning("%d files under %s are not images of %s and were ignored", ignored, base, task)
    return Listing(ids=ids, files={r: [found[p] for p in ids[r]] for r in ROLES},
                   labels={r: [EMOTIONS.index(emotion_of(p)) for p in ids[r]] for r in ROLES},
                   notes={"partial": release is None and len(found) < total, "ignored_files": ignored,
                          "root": str(base)})



@register_task("fer2013")
class Fer2013(Task):
    """Emotion in 7 classes (FER-2013 folder release, 48×48 grey); val = PublicTest, test = PrivateTest (Goodfellow
    et al. 2013); needs --data-root."""
    kind = TaskKind.MULTICLASS
    num_outputs = 7
    label_names = EMOTIONS
    # From scratch, chosen on the mini board's val (the module docstring has the evidence): SGD lr 0.01, momentum 0.9,
    # wd 5e-4 (the DLFD code's optimiser), cosine over 30 epochs, batch 64.
    recipe = Recipe(epochs=30, batch_size=64, lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="cosine",
                    augment=True)
    # Greyscale replicated to the backbones' 3 channels; horizontal flips and shifts of up to 6 px (reflect-padded
    # random crops), the FER literature's usual augmentation; symmetric 0.5/0.5 normalisation.
    preprocess = Preprocess((0.5,) * 3, (0.5,) * 3, augment="crop-flip")
    decode = DecodeSpec(size=48, grey=True, native=(48, 48))
    manifest = "fer2013"

    def load(self, data_root: Path | None) -> Splits:
        task = self.registered_name
        root = require_root(data_root, task)
        roles, digest = read_manifest(self.manifest)
        release = None
        if self.manifest != "fer2013":
            release = {p for ids in read_manifest("fer2013")[0].values() for p in ids}
        found = listing(root, task, roles, release)
        check_disjoint(found, release_folder(root))
        check_on_disk(found, release_folder(root))
        return build_splits(task, task, self.kind, self.num_outputs, self.preprocess, found, digest, self.decode)


@register_task("fer2013-mini")
class Fer2013Mini(Fer2013):
    """FER-2013 on a fixed 1,820-image subset (a CPU-sized board); val/test = its PublicTest/PrivateTest images;
    needs --data-root (the full release or the subset)."""
    manifest = "fer2013-mini"


def regenerate_manifest(release: Path, path: Path | None = None) -> str:
    """Rewrite splits/fer2013.json from the release's file list or folder (it must come out byte-identical)."""
    return write_manifest("fer2013", make_roles(release_paths(release)),
                          path or Path(__file__).parent / "splits" / "fer2013.json")


def regenerate_mini_manifest(subset: Path, path: Path | None = None) -> str:
    """Rewrite splits/fer2013-mini.json from a folder holding exactly the subset's images."""
    return write_manifest("fer2013-mini", make_roles(release_paths(subset)),
                          path or Path(__file__).parent / "splits" / "fer2013-mini.json")
