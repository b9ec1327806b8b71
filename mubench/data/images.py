"""What every image-file task shares: find and check the data root, decode once into a cached uint8 tensor.

An adapter parses its dataset's label files into a `Listing` (ids, files and labels per role); this module
checks it (roles disjoint, every file on disk), decodes each image to size×size RGB once per data root, and
keeps the result under `$MUBENCH_CACHE/decoded/` (or `~/.cache/mubench/decoded/`), never inside the data root.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mubench.data.splits import OPTIONAL_ROLES, ROLES, Preprocess, Split, Splits
from mubench.core.errors import MubenchError
from mubench.core.losses import TaskKind

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CONVERTIBLE_MODES = ("RGB", "L", "RGBA", "LA", "P", "CMYK", "YCbCr")  # 8-bit modes PIL converts to RGB faithfully
CACHE_FORMAT = 2
DECODE_CHUNK = 256  # images in flight at once while decoding

# A file or folder that only one known layout has, to name the task a wrong root belongs to.
LAYOUT_MARKERS = {
    "custom_train_dataset.csv": "mufac",
    "custom_korean_family_dataset_resolution_128": "mufac",
    "basic/EmoLabel/list_patition_label.txt": "rafdb",
    "EmoLabel/list_patition_label.txt": "rafdb",
    "DATASET/train": "rafdb",
    "CelebA-HQ-img": "mucac-gender or mucac-multi",
    "CelebAMask-HQ/CelebA-HQ-img": "mucac-gender or mucac-multi",
}


@dataclass
class Listing:
    """A data root as its label files describe it: per role, the ids, their files and their labels."""
    ids: dict[str, list[str]]
    files: dict[str, list[Path]]
    labels: dict[str, list]  # int per image (multiclass) or a list of 0/1 per image (multilabel)
    notes: dict = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)  # id -> person or family, where the release says

    def roles(self) -> tuple[str, ...]:
        """The four roles, and the optional ones (`unseen`) this listing has."""
        return ROLES + tuple(role for role in OPTIONAL_ROLES if role in self.ids)

    def counts(self) -> dict[str, int]:
        return {role: len(self.ids[role]) for role in self.roles()}


def require_root(root: Path | None, task: str) -> Path:
    if root is None:
        raise MubenchError(f"task {task!r} reads its data from disk; pass --data-root PATH or set MUBENCH_DATA "
                           f"to the folder holding the released dataset.")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise MubenchError(f"data root {str(root)!r} for task {task!r} is not a folder; pass the folder holding "
                           f"the released dataset.")
    return root


def looks_like(root: Path) -> str | None:
    """The task whose layout `root` has, if any known marker is there."""
    for marker, task in LAYOUT_MARKERS.items():
        if (root / marker).exists():
            return task
    return None


def missing_file(path: Path, what: str, task: str, root: Path) -> MubenchError:
    other = looks_like(root)
    hint = f" {str(root)!r} looks like a data root of task {other}, not {task!r}." if other and task not in other \
        else ""
    return MubenchError(f"{what} {str(path)!r} is missing; task {task!r} expects it there.{hint}")


def check_disjoint(listing: Listing, source: Path) -> None:
    seen: dict[str, str] = {}
    for role in listing.roles():
        for item in listing.ids[role]:
            if item in seen and seen[item] == role:
                raise MubenchError(f"{str(source)!r} lists {item!r} twice in role {role!r}; each image must "
                                   f"appear once.")
            if item in seen:
                raise MubenchError(f"{str(source)!r} puts {item!r} in both {seen[item]!r} and {role!r}; "
                                   f"each image must belong to exactly one role.")
            seen[item] = role


def check_on_disk(listing: Listing, source: Path) -> None:
    absent = [f for role in listing.roles() for f in listing.files[role] if not f.is_file()]
    if absent:
        raise MubenchError(f"{str(source)!r} names {len(absent)} image(s) missing from disk, first "
                           f"{str(absent[0])!r}; restore them or use a complete copy of the dataset.")


def split_hash(manifest_digest: str, listing: Listing) -> str:
    """The committed manifest's hash together with the ids this root yields per role (rules derive ids)."""
    h = hashlib.sha256(manifest_digest.encode())
    for role in listing.roles():
        h.update(f"\n{role}:".encode())
        h.update("\n".join(listing.ids[role]).encode())
    return h.hexdigest()


def cache_root() -> Path:
    base = os.environ.get("MUBENCH_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "mubench") / "decoded"


def _fingerprint(listing: Listing) -> str:
    """Sizes and modification times of every file: a rewritten image invalidates the decode cache."""
    h = hashlib.sha256()
    for role in listing.roles():
        for path in listing.files[role]:
            st = path.stat()
            h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class DecodeSpec:
    size: int = 128  # output height and width
    grey: bool = False  # decode as greyscale, replicated to 3 channels (RAF-DB in DLFD)
    native: tuple[int, int] | None = None  # (width, height) of the release; other sizes are logged as unusual


def decode_image(path: Path, spec: DecodeSpec) -> tuple[np.ndarray, bool, bool]:
    """One image as uint8 [size, size, 3]; also whether it was resized and whether its mode was converted."""
    try:
        with Image.open(path) as img:
            mode, dims = img.mode, img.size
            if mode not in CONVERTIBLE_MODES:
                raise MubenchError(f"image {str(path)!r} has mode {mode!r}; expected an 8-bit RGB or greyscale "
                                   f"image ({', '.join(CONVERTIBLE_MODES)}).")
            if img.format == "JPEG" and min(dims) >= 2 * spec.size:
                img.draft("RGB", (spec.size, spec.size))  # decode large JPEGs at a reduced DCT scale
            img.load()
            img = img.convert("L" if spec.grey else "RGB")
            if img.size != (spec.size, spec.size):
                img = img.resize((spec.size, spec.size), Image.BILINEAR)
            pixels = np.array(img, dtype=np.uint8)
    except MubenchError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise MubenchError(f"image {str(path)!r} cannot be decoded ({exc}); expected a complete JPEG or PNG "
                           f"file.") from None
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    converted = mode not in (("RGB", "L") if spec.grey else ("RGB",))
    return pixels, dims != (spec.native or dims), converted


def _decode_all(listing: Listing, spec: DecodeSpec) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    stats = {"decoded": 0, "resized_unusual": 0, "converted": 0}
    images = {}
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # PIL decodes without the GIL
        for role in listing.roles():
            files = listing.files[role]
            out = torch.empty((len(files), 3, spec.size, spec.size), dtype=torch.uint8)
            for start in range(0, len(files), DECODE_CHUNK):  # bounded: decoded arrays never pile up
                chunk = pool.map(lambda p: decode_image(p, spec), files[start:start + DECODE_CHUNK])
                for i, (pixels, resized, converted) in enumerate(chunk, start):
                    out[i] = torch.from_numpy(pixels).permute(2, 0, 1)
                    stats["resized_unusual"] += resized
                    stats["converted"] += converted
            stats["decoded"] += len(out)
            images[role] = out
    return images, stats


def decoded_images(dataset: str, listing: Listing, digest: str, spec: DecodeSpec) -> dict[str, torch.Tensor]:
    """The images of every role, decoded on first use and read from the cache after."""
    key = hashlib.sha256(f"{dataset}:{digest}:{spec}:{_fingerprint(listing)}".encode()).hexdigest()
    path = cache_root() / f"{dataset}-{spec.size}-{key[:24]}.pt"
    if path.is_file():
        try:
            cached = torch.load(path, mmap=True, weights_only=True)
            if cached.get("format") == CACHE_FORMAT and cached["ids"] == listing.ids:
                listing.notes.update({f"images_{k}": v for k, v in cached["stats"].items()})
                listing.notes["decode_cache"] = f"hit {path}"
                return {role: cached[role] for role in listing.roles()}
        except (OSError, RuntimeError, KeyError, EOFError):
            log.warning("decode cache %s is unreadable; decoding again", path)
    images, stats = _decode_all(listing, spec)
    _report(stats, spec, listing)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"format": CACHE_FORMAT, "ids": listing.ids, "stats": stats, **images}, partial)
    os.replace(partial, path)
    listing.notes["decode_cache"] = f"written {path}"
    return images


def _report(stats: dict[str, int], spec: DecodeSpec, listing: Listing) -> None:
    listing.notes.update({f"images_{k}": v for k, v in stats.items()})
    if stats["converted"]:
        log.warning("%d of %d images were not %s and were converted", stats["converted"], stats["decoded"],
                    "RGB or greyscale" if spec.grey else "RGB")
    if spec.native and stats["resized_unusual"]:
        w, h = spec.native
        log.warning("%d of %d images were not %d×%d (the release's size) and were resized to %d×%d",
                    stats["resized_unusual"], stats["decoded"], w, h, spec.size, spec.size)


def build_splits(task: str, dataset: str, kind: TaskKind, num_outputs: int, preprocess: Preprocess,
                 listing: Listing, manifest_digest: str, spec: DecodeSpec) -> Splits:
    """Check the listing, decode (or read the cache), and assemble the four roles (and `unseen` where listed)."""
    digest = split_hash(manifest_digest, listing)
    images = decoded_images(dataset, listing, digest, spec)
    parts = {}
    for role in listing.roles():
        if kind == TaskKind.MULTICLASS:
            labels = torch.tensor(listing.labels[role], dtype=torch.int64)
        else:
            labels = torch.tensor(listing.labels[role], dtype=torch.float32).reshape(-1, num_outputs)
        parts[role] = Split(images[role], labels, tuple(listing.ids[role]))
    return Splits(task, kind, num_outputs, preprocess, digest, **parts,
                  notes={**listing.notes, "manifest_sha256": manifest_digest}, identities=listing.identities)


def check_labels(values: list[int], valid: range, source: Path, what: str) -> None:
    bad = [v for v in values if v not in valid]
    if bad:
        raise MubenchError(f"{str(source)!r} has {what} {bad[0]!r}, outside the task's range "
                           f"{valid.start}–{valid.stop - 1}.")


def read_rule_manifest(task: str) -> tuple[dict, str]:
    """A committed rule manifest (mufac, rafdb, mucac) and its SHA-256, verified against the recorded hash; its
    roles are the four and, where the protocol has one, `unseen`."""
    from mubench.data import tasks  # at call time: tests point tasks.manifest_path elsewhere
    return _checked_manifest(tasks.manifest_path(task), "restore the committed file.", OPTIONAL_ROLES)


def _checked_manifest(path: Path, advice: str, optional: tuple[str, ...] = ()) -> tuple[dict, str]:
    """A manifest and its SHA-256, verified against its .sha256 sidecar; its roles must be the four (and may include
    `optional` ones)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    sidecar = path.with_suffix(".json.sha256")
    recorded = sidecar.read_text().split()[0] if sidecar.is_file() else ""
    if digest != recorded:
        raise MubenchError(f"split manifest {str(path)!r} does not match its SHA-256 in {str(sidecar)!r}; {advice}")
    payload = json.loads(data)
    roles = set(payload.get("roles", {}))
    if not set(ROLES) <= roles <= set(ROLES + optional):
        raise MubenchError(f"split manifest {str(path)!r} has roles {sorted(roles)}; expected {list(ROLES)}"
                           + (f" and optionally {list(optional)}." if optional else "."))
    return payload, digest


def manifest_bytes(payload: dict) -> tuple[bytes, str]:
    """A manifest's file content and its SHA-256, before (or without) writing it."""
    data = (json.dumps(payload, indent=1) + "\n").encode()
    return data, hashlib.sha256(data).hexdigest()


def write_rule_manifest(path: Path, payload: dict) -> str:
    """A committed manifest with a rule instead of ids, in read_manifest's format (roles + .sha256 sidecar)."""
    data, digest = manifest_bytes(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.with_suffix(".json.sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def read_local_manifest(path: Path) -> tuple[dict, str]:
    """A manifest written beside the decode cache (imagefolder), verified against its .sha256 sidecar."""
    return _checked_manifest(path, "delete both files to write a new split.")
