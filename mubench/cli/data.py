"""`mubench data check TASK --data-root PATH`: the validation a run does before training, alone, with counts."""
from __future__ import annotations

import sys
from pathlib import Path

import click
import torch

from mubench.data.splits import Splits
from mubench.core.errors import MubenchError
from mubench.core.losses import TaskKind


@click.group()
def data() -> None:
    """Validate and inspect a task's data root."""


@data.command()
@click.argument("task")
@click.option("--data-root", type=click.Path(path_type=Path), envvar="MUBENCH_DATA",
              help="Root of the task's data (or $MUBENCH_DATA).")
@click.option("--task-set", "task_assignments", multiple=True, metavar="TASK.OPTION=VALUE",
              help="Set a task's option as `mubench run` does (e.g. imagefolder.size=48); repeatable.")
def check(task: str, data_root: Path | None, task_assignments: tuple[str, ...]) -> None:
    """Validate TASK's data root as a run would, decode it into the cache, print counts and label histograms."""
    from mubench.data.tasks import load_task
    from mubench.data.tasks import TASKS, task_options
    try:
        name = TASKS.resolve(task)
        cls = TASKS.get(name)
        splits = load_task(name, "default", data_root if cls.needs_data_root else None,
                           options=task_options([name], task_assignments).get(name))[1]
    except MubenchError as exc:  # the same contract as the other commands: one line, exit 2
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(report(splits, getattr(cls, "label_names", None) or splits.notes.get("classes")))


def report(splits: Splits, names: tuple[str, ...] | list[str] | None) -> str:
    names = list(names or range(splits.num_outputs))
    notes = splits.notes
    lines = [f"task {splits.task}: {splits.kind.value}, {splits.num_outputs} outputs, "
             f"images {tuple(splits.retain.images.shape[1:])} uint8",
             f"root: {notes.get('root', '-')}",
             f"split hash: {splits.split_hash}",
             f"manifest sha256: {notes.get('manifest_sha256', '-')}"]
    if notes.get("partial"):
        lines.append("partial root: yes (not the full release; the split is the committed rule or manifest "
                     "restricted to it, and not comparable to published numbers)")
    header = "positives per attribute" if splits.kind == TaskKind.MULTILABEL else "images per label"
    lines.append(f"{'role':<8}{'images':>7}  {header}")
    for role in splits.roles():  # the four, and `unseen` where the task's protocol has one
        split = splits.role(role)
        lines.append(f"{role:<8}{len(split):>7}  {histogram(split.labels, splits.kind, splits.num_outputs, names)}")
    lines.append(f"decode cache: {notes.get('decode_cache', '-')}")
    lines.append(f"images resized from an unusual size: {notes.get('images_resized_unusual', 0)}, mode converted: "
                 f"{notes.get('images_converted', 0)}, files on disk ignored: {notes.get('ignored_files', 0)}")
    return "\n".join(lines)


def histogram(labels: torch.Tensor, kind: TaskKind, num_outputs: int, names: list) -> str:
    if kind == TaskKind.MULTILABEL:
        counts = labels.sum(0).long().tolist() if len(labels) else [0] * num_outputs
    else:
        counts = torch.bincount(labels, minlength=num_outputs).tolist()
    return " ".join(f"{name}:{count}" for name, count in zip(names, counts))
