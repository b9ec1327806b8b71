"""The Original (trained on retain ∪ forget) and Retrain (retain only) references of a task × backbone × seed,
from the content-addressed cache or trained with the task's recipe."""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mubench.backbones import build_backbone
from mubench.cache import ModelCache
from mubench.config import param_text
from mubench.data import Splits
from mubench.identity import reference_fields
from mubench.plan import RunPlan, RunSummary
from mubench.progress import bar as progress_bar, reference_done
from mubench.scenarios import apply_scenario, parse_scenario
from mubench.tasks import SMOKE_CAPS, TASKS, Task
from mubench.training import Recipe, train_reference

REFERENCE_ROLES = ("original", "retrain")


@dataclass
class References:
    original: nn.Module
    retrained: nn.Module
    original_record: dict
    retrain_record: dict


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
    splits = apply_scenario(splits, parse_scenario(scenario))
    recipe = task.recipe
    if preset == "smoke":
        splits, recipe = splits.shrunk(SMOKE_CAPS), recipe.smoke()
    return task, splits, recipe


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_reference_role(plan: RunPlan, splits: Splits, recipe: Recipe, backbone: str, seed: int, role: str,
                         summary: RunSummary) -> tuple[nn.Module, dict]:
    """One reference from the cache, or trained and cached (a process waiting on another's training loads it)."""
    if role == "original":
        data = splits.retain.concat(splits.forget)
    else:
        data = splits.retain
    seed_everything(seed)
    model = build_backbone(backbone, splits.num_outputs, plan.head, plan.pretrained)
    progress = None if plan.quiet else progress_bar
    record, hit = ModelCache(plan.cache_dir).get_or_train(
        reference_fields(plan, splits, recipe, backbone, seed, role), model, lambda m: train_reference(
            m, data, splits.kind, splits.preprocess, recipe, plan.device, seed, progress, f"{role} {backbone}"))
    summary.cache_hits += hit
    summary.cache_misses += not hit
    reference_done(role, splits, backbone, seed, record, trained=not hit, quiet=plan.quiet)
    return model.to(plan.device).eval(), record


def train_references(plan: RunPlan, splits: Splits, recipe: Recipe, backbone: str, seed: int,
                     summary: RunSummary) -> References:
    (original, original_record), (retrained, retrain_record) = (
        train_reference_role(plan, splits, recipe, backbone, seed, role, summary) for role in REFERENCE_ROLES)
    return References(original, retrained, original_record, retrain_record)
