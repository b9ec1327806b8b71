"""MUCAC from CelebAMask-HQ: gender (2 classes) and [Male, Young, Smiling] (multi-label), split by identity.

The committed manifest (splits/mucac.json, shared by both tasks) is a rule: the identity ranges of the MUCAC
notebooks. Which image has which identity is read from the data root's identity file, so the ids per role are
derived and their hash joins the manifest's in the split hash.
"""
from __future__ import annotations

import logging
from pathlib import Path

from mubench.data import ROLES, Preprocess, Splits
from mubench.errors import MubenchError
from mubench.images import (DecodeSpec, Listing, build_splits, check_disjoint, check_on_disk, missing_file,
                            require_root, write_rule_manifest)
from mubench.losses import TaskKind
from mubench.tasks import Task, read_manifest, register_task
from mubench.training import Recipe

log = logging.getLogger(__name__)

RELEASE_IMAGES = 30000
IMAGE_DIR = "CelebA-HQ-img"
IDENTITY_FILE = "CelebA-HQ-identity.txt"
ATTRIBUTE_FILES = ("CelebA-HQ-attribute.txt", "CelebAMask-HQ-attribute-anno.txt")  # MUCAC's name, then CelebAMask-HQ's
IDENTITY_RANGES = {"test": (0, 190), "forget": (190, 1250), "retain": (1250, 4855), "val": (4855, None)}


def rule_manifest() -> dict:
    return {
        "task": "mucac",
        "kind": "rule",
        "pinned": "the identity range of each role (MUCAC notebooks) and the release's image count",
        "derived": "the images per role, from the data root's identity file; labels from its attribute file",
        "release_images": RELEASE_IMAGES,
        "roles": {role: {"identity_from": lo, "identity_below": hi} for role, (lo, hi) in IDENTITY_RANGES.items()},
        "partial_root": "a root with fewer than 30,000 images (e.g. a test fixture) is split by the same ranges "
                        "and flagged partial",
    }


def celeba_root(root: Path) -> Path:
    nested = root / "CelebAMask-HQ"
    return nested if (nested / IMAGE_DIR).is_dir() else root


def read_identities(path: Path, root: Path) -> dict[str, int]:
    if not path.is_file():
        raise missing_file(path, "CelebA-HQ identity file", "mucac-gender", root)
    identities = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].isdigit():
            raise MubenchError(f"CelebA-HQ identity file {str(path)!r} line {number} reads {line.strip()!r}; "
                               f"expected '<file> <identity>'.")
        if fields[0] in identities:
            raise MubenchError(f"CelebA-HQ identity file {str(path)!r} lists {fields[0]!r} twice (line {number}).")
        identities[fields[0]] = int(fields[1])
    return identities


def read_attributes(path: Path, wanted: tuple[str, ...]) -> dict[str, list[int]]:
    """file -> the wanted attributes as 0/1, from '<count>', '<40 names>', then '<file> ±1 …' lines."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise MubenchError(f"CelebA-HQ attribute file {str(path)!r} does not start with an image count and a line "
                           f"of attribute names.")
    names = lines[1].split()
    absent = [a for a in wanted if a not in names]
    if absent:
        raise MubenchError(f"CelebA-HQ attribute file {str(path)!r} has attributes {names[:6]}…; expected the 40 "
                           f"CelebA attributes, including {', '.join(wanted)}.")
    columns = [names.index(a) for a in wanted]
    attributes = {}
    for number, line in enumerate(lines[2:], 3):
        fields = line.split()
        values = fields[1:]
        if len(values) != len(names) or any(v not in ("1", "-1") for v in values):
            bad = next((v for v in values if v not in ("1", "-1")), f"{len(values)} values")
            raise MubenchError(f"CelebA-HQ attribute file {str(path)!r} line {number} has {bad!r}, outside the "
                               f"task's range; expected {len(names)} values of 1 or -1.")
        attributes[fields[0]] = [int(values[c] == "1") for c in columns]
    if int(lines[0]) != len(attributes):
        raise MubenchError(f"CelebA-HQ attribute file {str(path)!r} declares {int(lines[0])} images but lists "
                           f"{len(attributes)}; expected the two to agree.")
    return attributes


def role_of(identity: int, ranges: dict[str, tuple[int, int | None]]) -> str:
    for role, (lo, hi) in ranges.items():
        if identity >= lo and (hi is None or identity < hi):
            return role
    raise MubenchError(f"identity {identity} is negative; CelebA-HQ identities are non-negative integers.")


def listing(root: Path, wanted: tuple[str, ...], ranges: dict[str, tuple[int, int | None]]) -> tuple[Listing, Path]:
    base = celeba_root(root)
    if not (base / IMAGE_DIR).is_dir():
        raise missing_file(base / IMAGE_DIR, "CelebA-HQ image folder", "mucac-gender", root)
    identity_path = base / IDENTITY_FILE
    identities = read_identities(identity_path, root)
    attribute_path = next((base / n for n in ATTRIBUTE_FILES if (base / n).is_file()), None)
    if attribute_path is None:
        raise missing_file(base / ATTRIBUTE_FILES[0], "CelebA-HQ attribute file", "mucac-gender", root)
    attributes = read_attributes(attribute_path, wanted)
    differ = sorted(set(identities) ^ set(attributes))
    if differ:
        where = "identity" if differ[0] in identities else "attribute"
        raise MubenchError(f"identity file {str(identity_path)!r} and attribute file {str(attribute_path)!r} "
                           f"disagree on {len(differ)} image(s), e.g. {differ[0]!r} is only in the {where} file; "
                           f"expected the same images in both.")
    ordered = sorted(identities, key=lambda f: (len(f), f))  # 0.jpg, 1.jpg, …, 10.jpg
    ids = {role: [f for f in ordered if role_of(identities[f], ranges) == role] for role in ROLES}
    full = len(identities) == RELEASE_IMAGES
    if not full:
        log.warning("CelebA-HQ root %s holds %d of the release's %d images: loaded as a partial root",
                    base, len(identities), RELEASE_IMAGES)
    on_disk = {f.name for f in (base / IMAGE_DIR).iterdir()}
    ignored = len(on_disk - set(identities))
    if ignored:
        log.warning("%d files in %s are not in the identity file and were ignored", ignored, base / IMAGE_DIR)
    return Listing(ids=ids, files={r: [base / IMAGE_DIR / f for f in ids[r]] for r in ROLES},
                   labels={r: [attributes[f] if len(wanted) > 1 else attributes[f][0] for f in ids[r]]
                           for r in ROLES},
                   notes={"partial": not full, "ignored_files": ignored, "root": str(base)}), identity_path


class Mucac(Task):
    attributes: tuple[str, ...]
    # The MUFAC/MUCAC benchmark recipe (spec/baselines.md): SGD lr 0.01, momentum 0.9, 30 epochs, lr ÷10 at 10
    # and 20; batch 64 and wd 5e-4 as for mufac.
    recipe = Recipe(epochs=30, batch_size=64, lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="step",
                    milestones=(10, 20), augment=True)
    # As the same authors' MUFAC notebook: Resize(128), horizontal flip, ToTensor without Normalize.
    preprocess = Preprocess((0.0,) * 3, (1.0,) * 3, augment="flip")
    decode = DecodeSpec(size=128)  # CelebA-HQ images are 1024×1024: resizing is the normal case

    def load(self, data_root: Path | None) -> Splits:
        name = self.registered_name
        root = require_root(data_root, name)
        rules, digest = read_manifest("mucac")
        ranges = {role: (rule["identity_from"], rule["identity_below"]) for role, rule in rules.items()}
        found, source = listing(root, self.attributes, ranges)
        check_disjoint(found, source)
        check_on_disk(found, source)
        return build_splits(name, "mucac", self.kind, self.num_outputs, self.preprocess, found, digest,
                            self.decode)


@register_task("mucac-gender")
class MucacGender(Mucac):
    """Gender, 2 classes (CelebAMask-HQ 'Male': 0 female, 1 male), identity split; needs --data-root."""
    kind = TaskKind.MULTICLASS
    num_outputs = 2
    attributes = ("Male",)
    label_names = ("female", "male")


@register_task("mucac-multi")
class MucacMulti(Mucac):
    """[Male, Young, Smiling], multi-label (3 logits, BCE), identity split; needs --data-root."""
    kind = TaskKind.MULTILABEL
    num_outputs = 3
    attributes = ("Male", "Young", "Smiling")
    label_names = attributes


def regenerate_manifest() -> str:
    """Rewrite the committed rule manifest (it must come out byte-identical; a test checks)."""
    return write_rule_manifest(Path(__file__).parent / "splits" / "mucac.json", rule_manifest())
