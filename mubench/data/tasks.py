"""What a task is: its kind, outputs, recipe, and how it loads its fixed splits."""
from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import ClassVar

from mubench.data.splits import ROLES, Splits
from mubench.core.config import param_text
from mubench.core.errors import MubenchError
from mubench.core.losses import TaskKind
from mubench.core.registry import Registry
from mubench.data.scenarios import apply_scenario, parse_scenario

TASKS: Registry[type["Task"]] = Registry("task", {
    "digits": "mubench.datasets.digits:Digits",
    "mufac": "mubench.datasets.mufac:Mufac",
    "rafdb": "mubench.datasets.rafdb:RafDb",
    "mucac-gender": "mubench.datasets.mucac:MucacGender",
    "mucac-multi": "mubench.datasets.mucac:MucacMulti",
    "fer2013": "mubench.datasets.fer2013:Fer2013",
    "fer2013-mini": "mubench.datasets.fer2013:Fer2013Mini",
    "imagefolder": "mubench.datasets.imagefolder:ImageFolder",
})

SMOKE_CAPS = {"retain": 240, "forget": 60, "val": 60, "test": 60}  # the smoke preset's samples per role


@dataclass(frozen=True)
class Recipe:
    """How a task trains its Original and Retrain references; both share it."""
    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # "cosine" | "step" | "constant"
    milestones: tuple[int, ...] = ()  # epochs where "step" divides the lr by 10
    augment: bool = False  # the task's augmentation on training batches

    def smoke(self) -> "Recipe":
        return replace(self, epochs=1)


def register_task(name: str):
    return TASKS.register(name)


class Task(ABC):
    kind: ClassVar[TaskKind]
    num_outputs: ClassVar[int]
    recipe: ClassVar[Recipe]
    needs_data_root: ClassVar[bool] = True
    Options: ClassVar[type | None] = None  # a frozen dataclass of the task's options (--task-set task.field=value)
    label_names: ClassVar[tuple[str, ...]] = ()  # class names in label order (`class:<name>`); empty: indices only
    has_identities: ClassVar[bool] = False  # its data names the person (or family) of each image: --scenario identity

    def __init__(self, options=None):
        self.options = options if options is not None else (self.Options() if self.Options else None)

    @abstractmethod
    def load(self, data_root: Path | None) -> Splits:
        """Read the data, check it against the committed split manifest, return the four roles."""


def manifest_path(task: str) -> Path:
    return Path(str(resources.files("mubench.datasets") / "splits" / f"{task}.json"))


def read_manifest(task: str) -> tuple[dict[str, list[str]], str]:
    """The committed ids per role and the manifest's SHA-256, verified against its recorded hash."""
    path = manifest_path(task)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    recorded = path.with_suffix(".json.sha256").read_text().split()[0]
    if digest != recorded:
        raise MubenchError(f"split manifest {path} has SHA-256 {digest[:12]}…, but {recorded[:12]}… is recorded; "
                           f"restore the committed file.")
    roles = json.loads(data)["roles"]
    if set(roles) != set(ROLES):
        raise MubenchError(f"split manifest {path} has roles {sorted(roles)}; expected {list(ROLES)}.")
    return roles, digest


def write_manifest(task: str, roles: dict[str, list[str]], path: Path | None = None) -> str:
    path = path or manifest_path(task)
    data = (json.dumps({"task": task, "roles": roles}, indent=1) + "\n").encode()
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    path.with_suffix(".json.sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def task_options(tasks: list[str], assignments: tuple[str, ...] | list[str]) -> dict[str, object]:
    """`--task-set imagefolder.size=48` as {task: its typed Options}, validated before anything runs."""
    from mubench.core.config import build_config, parse_assignments
    raw = parse_assignments(assignments, "--task-set", "task.option=value, e.g. imagefolder.size=48")
    options = {}
    for name, values in raw.items():
        name = TASKS.resolve(name)
        if name not in tasks:
            raise MubenchError(f"--task-set names task {name!r}, which is not among the tasks to run "
                               f"({', '.join(tasks)}).")
        cls = TASKS.get(name)
        if cls.Options is None:
            raise MubenchError(f"--task-set {name}: task {name!r} has no options; only tasks with options take it.")
        options[name] = build_config(cls.Options, name, values, "--task-set")
    return options


def load_task(name: str, preset: str, data_root: Path | None, scenario: str = "random",
              options=None) -> tuple[Task, Splits, Recipe]:
    """The task's splits under `scenario` (smoke: a seeded subsample of each role) and its recipe. A task's options
    (--task-set) join its split hash, since they can change the images (their size) or the split."""
    task = TASKS.get(name)(options)
    splits = task.load(data_root)
    if task.options is not None:
        text = json.dumps(param_text(task.options), sort_keys=True)
        splits = replace(splits, split_hash=hashlib.sha256(f"{splits.split_hash}:{text}".encode()).hexdigest(),
                         notes={**splits.notes, "task_options": param_text(task.options)})
    names = tuple(task.label_names or splits.notes.get("classes", ()))
    splits = apply_scenario(splits, parse_scenario(scenario), names)
    recipe = task.recipe
    if preset == "smoke":
        splits, recipe = splits.shrunk(SMOKE_CAPS), recipe.smoke()
    return task, splits, recipe
