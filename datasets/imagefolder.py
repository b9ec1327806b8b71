"""Any user dataset laid out as <root>/<class>/*.{jpg,png}, or <root>/{train,test}/<class>/*.

On first use a seeded, stratified split manifest is written beside the decode cache (the root may be read-only)
and reused after. Options are given on the command line of `mubench run` and `mubench data check` alike, e.g.
`--task-set imagefolder.size=48 --task-set imagefolder.forget=0.2` (FolderOptions lists them with their defaults);
they are recorded as params and are part of the split hash. With train/ and test/ folders the test role is test/ and
the test fraction is unused.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Annotated
from pathlib import Path

import numpy as np

from mubench.data.splits import ROLES, Preprocess, Splits
from mubench.core.errors import MubenchError
from mubench.core.ranges import Range
from mubench.data.images import (IMAGE_SUFFIXES, DecodeSpec, Listing, build_splits, cache_root, check_disjoint,
                            check_on_disk, looks_like, manifest_bytes, read_local_manifest, require_root,
                            write_rule_manifest)
from mubench.core.losses import TaskKind
from mubench.data.tasks import Task, register_task
from mubench.data.tasks import Recipe

log = logging.getLogger(__name__)

Share = Annotated[float, Range(0, 1, lo_open=True, hi_open=True)]
Seed = Annotated[int, Range(0)]
Pixels = Annotated[int, Range(8, 1024)]
RETIRED_VARIABLE = "MUBENCH_IMAGEFOLDER"  # where the options used to come from; refused so it cannot act silently


@dataclass(frozen=True)
class FolderOptions:
    val: Share = 0.1  # fraction of each class (of train/ when the root has one) for val
    test: Share = 0.2  # fraction of each class for test, when the root has no test/ folder
    forget: Share = 0.15  # fraction of each class's remaining training images to forget (≈ MUFAC's 1,500/10,025)
    seed: Seed = 0  # seed of the stratified shuffle
    size: Pixels = 128  # images are resized to size×size

    def __post_init__(self):
        if not all(0 < f < 1 for f in (self.val, self.test, self.forget)) or self.val + self.test >= 1:
            raise MubenchError(f"--task-set imagefolder gives fractions val={self.val}, test={self.test}, "
                               f"forget={self.forget}; each must lie in (0, 1) and val + test below 1.")
        if not 8 <= self.size <= 1024:
            raise MubenchError(f"--task-set imagefolder.size={self.size} is outside 8–1024 pixels.")


def scan(root: Path) -> dict[str, list[str]]:
    """part ("train" | "test" | "all") -> image paths relative to root, '<part>/<class>/<file>' or '<class>/<file>'."""
    has_parts = (root / "train").is_dir() and (root / "test").is_dir()
    parts = {"train": root / "train", "test": root / "test"} if has_parts else {"all": root}
    found = {}
    for part, base in parts.items():
        found[part] = sorted(str(file.relative_to(root).as_posix())
                             for folder in base.iterdir() if folder.is_dir()
                             for file in folder.iterdir() if file.suffix.lower() in IMAGE_SUFFIXES)
    if not any(found.values()):
        other = looks_like(root)
        hint = f" It looks like a data root of task {other}." if other else ""
        raise MubenchError(f"image folder {str(root)!r} has no <class>/*.jpg|png images (nor train/<class>/ and "
                           f"test/<class>/); expected one folder of images per class.{hint}")
    return found


def class_of(item: str) -> str:
    return item.split("/")[-2]


def stratified(items: list[str], fractions: list[float], seed: int) -> list[list[str]]:
    """Per class, a seeded shuffle cut at the rounded fractions; what is left over goes to the last part."""
    out = [[] for _ in range(len(fractions) + 1)]
    rng = np.random.RandomState(seed)
    for cls in sorted({class_of(i) for i in items}):
        members = [i for i in items if class_of(i) == cls]
        members = [members[k] for k in rng.permutation(len(members))]
        start = 0
        for part, fraction in enumerate(fractions):
            take = round(fraction * len(members))
            out[part] += members[start:start + take]
            start += take
        out[-1] += members[start:]
    return [sorted(part) for part in out]


def make_roles(found: dict[str, list[str]], options: FolderOptions) -> dict[str, list[str]]:
    if "all" in found:
        test, val, train = stratified(found["all"], [options.test, options.val], options.seed)
    else:
        test = found["test"]
        val, train = stratified(found["train"], [options.val], options.seed)
    forget, retain = stratified(train, [options.forget], options.seed)
    return {"retain": retain, "forget": forget, "val": val, "test": test}


def manifest_file(root: Path, options: FolderOptions) -> Path:
    key = hashlib.sha256(f"{root.resolve()}:{options.val}:{options.test}:{options.forget}:{options.seed}"
                         .encode()).hexdigest()[:20]
    return cache_root() / f"imagefolder-{root.name}-{key}.json"


def listing(root: Path, options: FolderOptions) -> tuple[Listing, str, Path, dict | None]:
    """The split of the images under root: its manifest's while the folder holds exactly the manifest's images, else
    drawn again (a changed folder gets a new split and split hash). The last item is the payload of a manifest still
    to be written: the caller writes it once the images have decoded, so a corrupt image leaves no manifest."""
    found = scan(root)
    on_disk = {i for items in found.values() for i in items}
    path = manifest_file(root, options)
    pending = None
    if path.is_file():
        payload, digest = read_local_manifest(path)
        listed = {i for r in ROLES for i in payload["roles"][r]}
        if listed != on_disk:
            log.warning("image folder %s changed since its split was drawn (%d images added, %d gone): the split is "
                        "drawn again, with a new split hash", root, len(on_disk - listed), len(listed - on_disk))
            payload = None
    else:
        payload = None
    if payload is None:
        roles = make_roles(found, options)
        empty = [role for role in ROLES if not roles[role]]
        if empty:
            raise MubenchError(f"image folder {str(root)!r} is too small to split: role {empty[0]!r} gets no images "
                               f"at val={options.val}, test={options.test}, forget={options.forget}; add images "
                               f"or raise that fraction with --task-set imagefolder.<role>=….")
        classes = sorted({class_of(i) for items in found.values() for i in items})
        payload = pending = {"task": "imagefolder", "root": str(root.resolve()), "options": options.__dict__,
                             "classes": classes, "roles": roles}
        digest = manifest_bytes(payload)[1]
    classes, roles = payload["classes"], payload["roles"]
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({class_of(i) for r in ROLES for i in roles[r]} - set(index))
    if unknown:
        raise MubenchError(f"split manifest {str(path)!r} uses class {unknown[0]!r} not in its class list; delete "
                           f"it (and its .sha256) to write a new split.")
    found_listing = Listing(ids=roles, files={r: [root / i for i in roles[r]] for r in ROLES},
                            labels={r: [index[class_of(i)] for i in roles[r]] for r in ROLES},
                            notes={"classes": classes, "manifest": str(path), "root": str(root)})
    return found_listing, digest, path, pending


@register_task("imagefolder")
class ImageFolder(Task):
    """Any <root>/<class>/*.jpg|png folder (or train/ and test/ of them); options with --task-set imagefolder.…"""
    Options = FolderOptions
    kind = TaskKind.MULTICLASS
    num_outputs = 0  # the number of class folders; Splits carries it
    # A generic from-scratch recipe in the DLFD code's optimiser settings, on a cosine schedule over 30 epochs.
    recipe = Recipe(epochs=30, batch_size=64, lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="cosine",
                    augment=True)
    preprocess = Preprocess((0.5,) * 3, (0.5,) * 3, augment="flip")

    def load(self, data_root: Path | None) -> Splits:
        root = require_root(data_root, "imagefolder")
        other = looks_like(root)
        if other:
            raise MubenchError(f"data root {str(root)!r} looks like a data root of task {other}; use that task, "
                               f"whose adapter reads its labels and official split, not imagefolder.")
        if os.environ.get(RETIRED_VARIABLE):
            raise MubenchError(f"{RETIRED_VARIABLE} is no longer read; give its options on the command line, e.g. "
                               f"--task-set imagefolder.size=48, and unset it.")
        options = self.options
        found, digest, path, pending = listing(root, options)
        check_disjoint(found, path)
        check_on_disk(found, path)
        splits = build_splits("imagefolder", "imagefolder", self.kind, len(found.notes["classes"]), self.preprocess,
                              found, digest, DecodeSpec(size=options.size))
        if pending is not None:
            write_rule_manifest(path, pending)
            log.info("wrote the split manifest of %s to %s", root, path)
        return splits

