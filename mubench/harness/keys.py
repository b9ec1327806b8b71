"""What makes two cells (or two cached references) the same: the keys that decide what is reused.

A key covers everything that can change the numbers: the configuration, the data split, the recipe, the seed, the
source of every first-party module the work executes (found by following imports from its entry modules), and the
versions of the numeric libraries. Editing `mubench/unlearn/loop.py` or a helper a method imports therefore makes the
affected cells run again; editing the leaderboard renderer does not.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mubench.core.config import param_text, stable_hash

NUMERIC_LIBRARIES = ("torch", "torchvision", "POT", "scikit-learn", "numpy")
REFERENCE_ENTRY = "mubench.harness.references"  # trains the Original and Retrain references
SHADOW_ENTRY = "mubench.attacks.shadows"  # trains the shadow models the attacks calibrate on
# The backbone is initialised right after seeding, so a reference's weights do not depend on what its process ran
# before. Part of every reference and cell key: entries trained before the seeding are neither loaded nor reused.
REFERENCE_INIT = "seeded-init"


def module_source(name: str) -> bytes | None:
    """The source of module `name`, or None for a module without a Python source file."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin).read_bytes()


def _imported_names(name: str, source: bytes) -> set[str]:
    """Absolute names of the modules (or, for `from a import b`, candidate submodules) that `source` imports,
    wherever the import statement stands (lazy imports inside functions count)."""
    package = name if module_is_package(name) else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def module_is_package(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    return bool(spec and spec.submodule_search_locations is not None)


def _find(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def source_closure(entries: tuple[str, ...], roots: tuple[str, ...]) -> dict[str, str]:
    """{module: SHA-256 of its source} for `entries`, their parent packages and every module they import,
    transitively, whose top-level package is one of `roots` (standard library and third-party code are covered by
    the library versions instead)."""
    digests: dict[str, str] = {}
    pending = list(entries)
    while pending:
        name = pending.pop()
        if name in digests or name.split(".")[0] not in roots or not _find(name):
            continue
        source = module_source(name)
        digests[name] = hashlib.sha256(source or b"").hexdigest()
        if source:
            pending += _imported_names(name, source)
        parent = name.rpartition(".")[0]
        if parent:
            pending.append(parent)
    return dict(sorted(digests.items()))


def library_versions() -> dict[str, str]:
    out = {}
    for name in NUMERIC_LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


@functools.lru_cache(maxsize=None)
def code_version(entries: tuple[str, ...]) -> str:
    """One hash of the first-party sources `entries` execute and of the numeric libraries' versions."""
    roots = tuple(sorted({"mubench", *(e.split(".")[0] for e in entries)}))
    return stable_hash({"sources": source_closure(entries, roots), "libraries": library_versions()}, length=32)


def pretrained_digest(path: Path | None) -> str | None:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None


def task_module(task: str) -> str:
    from mubench.data.tasks import TASKS
    return TASKS.get(task).__module__


def method_module(name: str) -> str:
    from mubench.unlearn.api import METHODS
    return METHODS.get(name).__module__


def reference_fields(plan, splits, recipe, backbone: str, seed: int, role: str) -> dict:
    """Everything that determines a reference's weights: its cache key."""
    return {"task": splits.task, "split_hash": splits.split_hash, "backbone": backbone, "head": plan.head,
            "pretrained": pretrained_digest(plan.pretrained), "recipe": param_text(recipe), "seed": seed, "role": role,
            "init": REFERENCE_INIT, "code": code_version((REFERENCE_ENTRY, task_module(splits.task)))}


def shadow_fields(plan, splits, recipe, backbone: str, seed: int, index: int, part: str = "") -> dict:
    """Everything that determines shadow model `index` of a seed (its training set is a seeded half of forget ∪
    the held-out role, drawn from `seed` and `index`, so shadows are shared by every method and every K). `part`:
    "" for what LiRA keeps (φ and membership), "model" for its weights, "retrain" for its Retrain (U-LiRA)."""
    role = f"shadow-{index}" + (f"-{part}" if part else "")
    return {**reference_fields(plan, splits, recipe, backbone, seed, role),
            "code": code_version((SHADOW_ENTRY, task_module(splits.task)))}


def config_hash(config) -> str:
    return stable_hash(param_text(config))
