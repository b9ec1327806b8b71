"""MUCAC from CelebAMask-HQ: gender (2 classes) and [Male, Young, Smiling] (multi-label), split by identity.

The committed manifest (splits/mucac.json, shared by both tasks) is a rule: identity ranges. Which image has which
identity is read from the data root's identity file, so the ids per role are derived and their hash joins the
manifest's in the split hash.

Roles (source → mubench), from the MUCAC notebooks (`02_MUCAC/*/Machine_Unlearning_MUCAC_*_Base_Models.ipynb` in
github.com/ndb796/MachineUnlearning), which split CelebA-HQ by identity id:
- 190 ≤ id < 1250 ("forget") → forget;
- 1250 ≤ id < 4855 ("retain") → retain, except its last 190 identities (see val);
- id < 190 ("test", where the notebooks report accuracy) → test: utility accuracy only;
- id ≥ 4855 ("unseen", the MIA's non-members in their `cal_mia`) → unseen: the MIA's non-members only.
The notebooks have no set that is neither: the Original's loop watches test accuracy. mubench monitors and selects
on val = 4665 ≤ id < 4855, the last 190 identities of their retain range (as many identities as their test range,
about 5 % of its images), so val is identity-disjoint from every other role and neither test nor unseen is read
before scoring. Retain is therefore 1250 ≤ id < 4665.

Layouts: the notebooks download `CelebA-HQ-identity.txt` and `CelebA-HQ-attribute.txt` into their working folder and
unzip `CelebAMask-HQ/` (with `CelebA-HQ-img/`) beside them; point --data-root at that folder. A root holding the
image folder and the label files together (e.g. the unzipped `CelebAMask-HQ/` with the two .txt files copied in;
its own `CelebAMask-HQ-attribute-anno.txt` has the same format) works too.

Where mubench departs from the authors on purpose: one recipe trains both the Original and the Retrain reference
(the notebooks set up each in its own cell).
"""
from __future__ import annotations

import logging
from pathlib import Path

from mubench.data.splits import Preprocess, Splits
from mubench.core.errors import MubenchError
from mubench.data.images import (DecodeSpec, Listing, build_splits, check_disjoint, check_on_disk, missing_file,
                            read_rule_manifest, require_root, write_rule_manifest)
from mubench.core.losses import TaskKind
from mubench.data.tasks import Task, register_task
from mubench.data.tasks import Recipe

log = logging.getLogger(__name__)

RELEASE_IMAGES = 30000
IMAGE_DIR = "CelebA-HQ-img"
IDENTITY_FILE = "CelebA-HQ-identity.txt"
ATTRIBUTE_FILES = ("CelebA-HQ-attribute.txt", "CelebAMask-HQ-attribute-anno.txt")  # MUCAC's name, then CelebAMask-HQ's
IDENTITY_RANGES = {"test": (0, 190), "forget": (190, 1250), "retain": (1250, 4665), "val": (4665, 4855),
                   "unseen": (4855, None)}


def rule_manifest() -> dict:
    return {
        "task": "mucac",
        "kind": "rule",
        "pinned": "the identity range of each role and the release's image count",
        "source": "MUCAC notebooks (github.com/ndb796/MachineUnlearning): forget 190-1250, retain 1250-4855, "
                  "test < 190 (accuracy), unseen >= 4855 (MIA non-members); val = the last 190 identities of "
                  "their retain range, chosen by mubench (the notebooks have no val)",
        "derived": "the images per role, from the data root's identity file; labels from its attribute file",
        "release_images": RELEASE_IMAGES,
        "roles": {role: {"identity_from": lo, "identity_below": hi} for role, (lo, hi) in IDENTITY_RANGES.items()},
        "partial_root": "a root with fewer than 30,000 images (e.g. a test fixture) is split by the same ranges "
                        "and flagged partial",
    }


def find_files(root: Path) -> tuple[Path, Path, Path | None]:
    """The image folder, the identity file and the attribute file: each in the root or in CelebAMask-HQ/ under it
    (the notebooks' layout has the images in CelebAMask-HQ/ and the two .txt files beside it)."""
    bases = (root, root / "CelebAMask-HQ")
    images = next((b / IMAGE_DIR for b in bases if (b / IMAGE_DIR).is_dir()), bases[1] / IMAGE_DIR)
    identity = next((b / IDENTITY_FILE for b in bases if (b / IDENTITY_FILE).is_file()),
                    images.parent / IDENTITY_FILE)
    attribute = next((b / n for b in bases for n in ATTRIBUTE_FILES if (b / n).is_file()), None)
    return images, identity, attribute


def read_identities(path: Path, root: Path, task: str) -> dict[str, int]:
    if not path.is_file():
        raise missing_file(path, "CelebA-HQ identity file", task, root)
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


def listing(root: Path, wanted: tuple[str, ...], ranges: dict[str, tuple[int, int | None]],
            task: str) -> tuple[Listing, Path]:
    image_dir, identity_path, attribute_path = find_files(root)
    if not image_dir.is_dir():
        raise missing_file(image_dir, "CelebA-HQ image folder", task, root)
    identities = read_identities(identity_path, root, task)
    if attribute_path is None:
        raise missing_file(identity_path.parent / ATTRIBUTE_FILES[0], "CelebA-HQ attribute file", task, root)
    attributes = read_attributes(attribute_path, wanted)
    differ = sorted(set(identities) ^ set(attributes))
    if differ:
        where = "identity" if differ[0] in identities else "attribute"
        raise MubenchError(f"identity file {str(identity_path)!r} and attribute file {str(attribute_path)!r} "
                           f"disagree on {len(differ)} image(s), e.g. {differ[0]!r} is only in the {where} file; "
                           f"expected the same images in both.")
    ordered = sorted(identities, key=lambda f: (len(f), f))  # 0.jpg, 1.jpg, …, 10.jpg
    roles = tuple(ranges)
    ids = {role: [f for f in ordered if role_of(identities[f], ranges) == role] for role in roles}
    full = len(identities) == RELEASE_IMAGES
    if not full:
        log.warning("CelebA-HQ root %s holds %d of the release's %d images: loaded as a partial root",
                    root, len(identities), RELEASE_IMAGES)
    on_disk = {f.name for f in image_dir.iterdir()}
    ignored = len(on_disk - set(identities))
    if ignored:
        log.warning("%d files in %s are not in the identity file and were ignored", ignored, image_dir)
    return Listing(ids=ids, files={r: [image_dir / f for f in ids[r]] for r in roles},
                   labels={r: [attributes[f] if len(wanted) > 1 else attributes[f][0] for f in ids[r]]
                           for r in roles},
                   notes={"partial": not full, "ignored_files": ignored, "root": str(root)},
                   identities={f: str(identities[f]) for r in roles for f in ids[r]}), identity_path


class Mucac(Task):
    """Roles (MUCAC notebooks, by identity id): forget 190–1250, retain 1250–4665, val 4665–4855 (mubench's, the
    last 190 identities of their retain range), test < 190 (utility accuracy), unseen ≥ 4855 (MIA non-members)."""
    attributes: tuple[str, ...]
    has_identities = True  # CelebA-HQ identities: --scenario identity
    # mubench's face recipe: SGD lr 0.01, momentum 0.9, wd 5e-4, batch 64 (the notebooks' loaders), 30 epochs with
    # lr ÷10 at 10 and 20; one recipe for the Original and the Retrain reference alike.
    recipe = Recipe(epochs=30, batch_size=64, lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="step",
                    milestones=(10, 20), augment=True)
    # As the MUCAC notebooks: Resize(128), ToTensor without Normalize (mean 0, std 1); their training transform also
    # has RandomAffine(0, shear=10, scale=(0.8, 1.2)) and ColorJitter(0.2, 0.2, 0.2), which mubench leaves out.
    preprocess = Preprocess((0.0,) * 3, (1.0,) * 3, augment="flip")
    decode = DecodeSpec(size=128)  # CelebA-HQ images are 1024×1024: resizing is the normal case

    def load(self, data_root: Path | None) -> Splits:
        name = self.registered_name
        root = require_root(data_root, name)
        manifest, digest = read_rule_manifest("mucac")
        ranges = {role: (rule["identity_from"], rule["identity_below"]) for role, rule in manifest["roles"].items()}
        found, source = listing(root, self.attributes, ranges, name)
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
