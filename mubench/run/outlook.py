"""A run's first line, printed before any training: what will run (cells, references to train or in the cache,
workers) and roughly how long, from the task's recipe and the measured speed of a few training batches here."""
from __future__ import annotations

import math
import time

import torch

from mubench.core.losses import task_loss
from mubench.core.progress import announce
from mubench.data.splits import BatchLoader
from mubench.harness.keys import reference_fields
from mubench.harness.plan import CellJob, RunPlan
from mubench.train.backbones import build_backbone
from mubench.train.cache import ModelCache
from mubench.train.training import make_optimizer

TIMED_BATCHES = 3
# What a cell costs, as a share of training the Retrain reference: the mean of the methods' × retrain on the
# committed digits board (their presets' unlearning plus the cell's scoring).
CELL_SHARE = 0.35


def references_to_train(plan: RunPlan, jobs: list[CellJob], tasks: dict) -> tuple[int, int]:
    """(to train, in the cache) over the references of the seeds the jobs need."""
    cache, missing, cached = ModelCache(plan.cache_dir), 0, 0
    for group in dict.fromkeys(job.group for job in jobs):
        splits, recipe = tasks[group.data]
        for role in ("original", "retrain"):
            weights, record = cache.paths(cache.key(reference_fields(plan, splits, recipe, group.backbone,
                                                                       group.seed, role)))
            cached += weights.exists() and record.exists()
            missing += not (weights.exists() and record.exists())
    return missing, cached


def seconds_per_batch(plan: RunPlan, splits, recipe, backbone: str) -> float:
    """A training step of the task's backbone at its recipe's batch size, here, on the cells' thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads or threads)
    try:
        model = build_backbone(backbone, splits.num_outputs, plan.head).to(plan.device).train()
        optimizer = make_optimizer(model.parameters(), "sgd", recipe.lr, recipe.momentum, recipe.weight_decay)
        batches = iter(BatchLoader(splits.retain, splits.preprocess, recipe.batch_size, shuffle=True,
                                   augment=recipe.augment, seed=0, device=plan.device))
        times = []
        for _ in range(min(TIMED_BATCHES + 1, len(splits.retain) // recipe.batch_size or 1)):
            x, y = next(batches)
            started = time.perf_counter()
            optimizer.zero_grad()
            task_loss(model(x), y, splits.kind).backward()
            optimizer.step()
            times.append(time.perf_counter() - started)
        return min(times[1:] or times)  # the first step pays for allocation
    finally:
        torch.set_num_threads(threads)


def reference_estimate(plan: RunPlan, splits, recipe, backbone: str) -> float:
    """Seconds to train the Original reference here: its batches per epoch × epochs × the measured step."""
    batches = math.ceil((len(splits.retain) + len(splits.forget)) / recipe.batch_size)
    return seconds_per_batch(plan, splits, recipe, backbone) * batches * recipe.epochs


def announce_run(plan: RunPlan, jobs: list[CellJob], tasks: dict, workers: int) -> dict:
    """Print what will run and its estimate; return {task × scenario × backbone: estimated reference seconds}."""
    if not jobs:
        announce("mubench run: every cell is already finished in the store; rendering the boards.", plan.quiet)
        return {}
    estimates = {}
    for group in dict.fromkeys(job.group for job in jobs):
        where = (*group.data, group.backbone)
        if where not in estimates:
            splits, recipe = tasks[group.data]
            estimates[where] = reference_estimate(plan, splits, recipe, group.backbone)
    missing, cached = references_to_train(plan, jobs, tasks)
    per_reference = sum(estimates.values()) / len(estimates)
    work = missing * per_reference + len(jobs) * CELL_SHARE * per_reference
    seeds = len({job.group for job in jobs})
    announce(f"mubench run: {len(jobs)} cell(s) over {seeds} task × backbone × seed group(s); {missing} "
             f"reference(s) to train, {cached} from the cache; {workers} worker(s) × {plan.threads or torch.get_num_threads()} torch "
             f"thread(s). Estimate: about {_duration(work / max(1, min(workers, len(jobs))))} (a reference trains in "
             f"about {per_reference:.0f} s here, from {TIMED_BATCHES} timed batches; a cell costs about "
             f"{CELL_SHARE:.2f}× that).", plan.quiet)
    return estimates


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
