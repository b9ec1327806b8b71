"""The conformance kit for tasks: what every registered task must declare and what its splits must hold.

    check_task("my-task")                          # declarations; a task that needs no data root is loaded too
    check_task("my-task", data_root=fixture_root)  # and the splits it reads from a root in its release's layout

A task author runs it in their own tests on a tiny fixture in the release's layout (tests/fixtures_faces.py builds
one per built-in face task); the project's own tests run it on every registered task.
"""
from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

import torch

from mubench.core.errors import MubenchError
from mubench.core.losses import TaskKind
from mubench.data.splits import ROLES, Splits
from mubench.data.tasks import TASKS, Recipe, Task

SCHEDULES = ("cosine", "step", "constant")


class TaskCheckError(AssertionError):
    """A task does not meet the contract; the message names the task and what is wrong."""


def _fail(message: str) -> None:
    raise TaskCheckError(message)


def task_class(task: "str | type[Task]") -> type[Task]:
    return TASKS.get(task) if isinstance(task, str) else task


def check_declarations(task) -> None:
    """Kind, outputs, recipe and options as the harness reads them, and a docstring for `mubench ls tasks`."""
    cls = task_class(task)
    name = getattr(cls, "registered_name", cls.__name__)
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        _fail(f"task {name!r} is not a subclass of mubench.data.tasks.Task.")
    if not isinstance(getattr(cls, "kind", None), TaskKind):
        _fail(f"task {name!r} declares kind {getattr(cls, 'kind', None)!r}; expected a TaskKind.")
    outputs = getattr(cls, "num_outputs", None)
    if not isinstance(outputs, int) or outputs == 1 or outputs < 0:
        _fail(f"task {name!r} declares num_outputs {outputs!r}; expected 2 or more (0: counted when loaded).")
    recipe = getattr(cls, "recipe", None)
    if not isinstance(recipe, Recipe):
        _fail(f"task {name!r} declares recipe {recipe!r}; expected a mubench.data.tasks.Recipe.")
    if recipe.epochs < 1 or recipe.batch_size < 1 or not recipe.lr > 0 or recipe.schedule not in SCHEDULES:
        _fail(f"task {name!r} has recipe {recipe}; epochs and batch size must be positive, lr above 0 and the "
              f"schedule one of {', '.join(SCHEDULES)}.")
    if recipe.schedule == "step" and not recipe.milestones:
        _fail(f"task {name!r} has a step schedule without milestones.")
    if cls.Options is not None:
        if not (dataclasses.is_dataclass(cls.Options) and cls.Options.__dataclass_params__.frozen):
            _fail(f"task {name!r} declares Options that are not a frozen dataclass.")
        bare = [f.name for f in dataclasses.fields(cls.Options)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if bare:
            _fail(f"task {name!r}: options {bare} have no default; `--task-set` sets options, it cannot be required.")
    if not (cls.__doc__ or getattr(sys.modules.get(cls.__module__), "__doc__", None) or "").strip():
        _fail(f"task {name!r} has no docstring (nor has its module); `mubench ls tasks` prints its first line.")


def check_splits(task, splits: Splits) -> None:
    """The roles a loaded task returns: non-empty, disjoint, images and labels of the declared shape and range."""
    cls = task_class(task)
    name = getattr(cls, "registered_name", cls.__name__)
    if splits.task != name:
        _fail(f"task {name!r} returned splits named {splits.task!r}; the harness keys runs by the registered name.")
    if splits.kind != cls.kind or (cls.num_outputs and splits.num_outputs != cls.num_outputs):
        _fail(f"task {name!r} declares {cls.kind.value} with {cls.num_outputs} outputs but loaded "
              f"{splits.kind.value} with {splits.num_outputs}.")
    if not (isinstance(splits.split_hash, str) and len(splits.split_hash) == 64):
        _fail(f"task {name!r} gives split hash {splits.split_hash!r}; expected the manifest's SHA-256 (64 hex digits).")
    owner: dict[str, str] = {}
    for role in splits.roles():
        split = splits.role(role)
        if len(split) == 0 and role in ROLES:
            _fail(f"task {name!r} has an empty {role} role.")
        images, labels = split.images, split.labels
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            _fail(f"task {name!r}: {role} images are {images.dtype} {tuple(images.shape)}; expected uint8 [N, 3, H, W].")
        if not len(images) == len(labels) == len(split.ids):
            _fail(f"task {name!r}: {role} has {len(images)} images, {len(labels)} labels and {len(split.ids)} ids.")
        _check_labels(name, role, labels, splits)
        for item in split.ids:
            if item in owner:
                _fail(f"task {name!r}: image {item!r} is in both {owner[item]} and {role}; roles must be disjoint.")
            owner[item] = role
    if cls.has_identities:
        missing = [i for role in ("retain", "forget") for i in splits.role(role).ids if i not in splits.identities]
        if missing:
            _fail(f"task {name!r} declares identities but {len(missing)} training images have none "
                  f"(first: {missing[0]!r}).")


def _check_labels(name: str, role: str, labels: torch.Tensor, splits: Splits) -> None:
    if splits.kind == TaskKind.MULTICLASS:
        if labels.dtype != torch.int64 or labels.dim() != 1:
            _fail(f"task {name!r}: {role} labels are {labels.dtype} {tuple(labels.shape)}; expected int64 [N].")
        if len(labels) and (labels.min() < 0 or labels.max() >= splits.num_outputs):
            _fail(f"task {name!r}: {role} labels run from {int(labels.min())} to {int(labels.max())}; expected "
                  f"0 to {splits.num_outputs - 1}.")
    elif labels.dim() != 2 or labels.shape[1] != splits.num_outputs or not torch.all((labels == 0) | (labels == 1)):
        _fail(f"task {name!r}: {role} labels are {tuple(labels.shape)}; expected 0/1 of shape "
              f"[N, {splits.num_outputs}].")


def check_loads_the_same(task, data_root: Path | None) -> Splits:
    """Two loads give the same split hash and the same ids per role (a run's split is fixed, not drawn)."""
    cls = task_class(task)
    name = getattr(cls, "registered_name", cls.__name__)
    first, second = cls().load(data_root), cls().load(data_root)
    if first.split_hash != second.split_hash or any(
            first.role(r).ids != second.role(r).ids for r in first.roles()):
        _fail(f"task {name!r} loads different splits from the same root; a split must be fixed by its manifest.")
    return first


def check_bad_roots(task) -> None:
    """A task that reads a data root refuses a missing and an empty one with one clear sentence (MubenchError)."""
    cls = task_class(task)
    name = getattr(cls, "registered_name", cls.__name__)
    if not cls.needs_data_root:
        return
    with tempfile.TemporaryDirectory() as empty:
        for root in (None, Path(empty)):
            try:
                cls().load(root)
            except MubenchError:
                continue
            except Exception as exc:  # what a user would see as a traceback
                _fail(f"task {name!r} given data root {root!r} raised {type(exc).__name__}: {exc}; expected a "
                      f"MubenchError naming what is missing.")
            _fail(f"task {name!r} loaded from data root {root!r}, which holds no dataset.")


def check_task(task, data_root: Path | None = None) -> None:
    """Every check: declarations and bad roots always; the splits when the task needs no root or one is given."""
    check_declarations(task)
    check_bad_roots(task)
    if data_root is not None or not task_class(task).needs_data_root:
        check_splits(task, check_loads_the_same(task, data_root))
