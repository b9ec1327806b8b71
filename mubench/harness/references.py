"""The Original (trained on retain ∪ forget) and Retrain (retain only) references of a task × backbone × seed,
from the content-addressed cache or trained with the task's recipe."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from mubench.train.backbones import build_backbone
from mubench.train.cache import ModelCache
from mubench.data.splits import Splits
from mubench.harness.keys import reference_fields
from mubench.harness.plan import RunPlan, RunSummary
from mubench.core.seeds import seed_everything
from mubench.core.store import REFERENCES
from mubench.core.progress import bar as progress_bar, reference_done, slow_note
from mubench.train.training import train_reference
from mubench.data.tasks import Recipe



@dataclass
class References:
    original: nn.Module
    retrained: nn.Module
    original_record: dict
    retrain_record: dict


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
    estimate = plan.reference_estimates.get((splits.task, splits.scenario, backbone), 0.0)
    if role == "retrain":
        estimate *= len(splits.retain) / (len(splits.retain) + len(splits.forget))
    reference_done(role, splits, backbone, seed, record, trained=not hit, quiet=plan.quiet,
                   note=slow_note(record["train_seconds"], estimate))
    return model.to(plan.device).eval(), record


def train_references(plan: RunPlan, splits: Splits, recipe: Recipe, backbone: str, seed: int,
                     summary: RunSummary) -> References:
    (original, original_record), (retrained, retrain_record) = (
        train_reference_role(plan, splits, recipe, backbone, seed, role, summary) for role in REFERENCES)
    return References(original, retrained, original_record, retrain_record)
