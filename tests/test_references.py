"""The Original and Retrain references (mubench.harness.references): what each trains on, from which seed, and the cache's
count of hits and misses."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from mubench.harness import references
from mubench.harness.plan import RunPlan, RunSummary
from mubench.kits.method_kit import TOY_RECIPE, toy_splits


def test_the_original_trains_on_retain_and_forget_retrain_on_retain_each_from_its_seed(tmp_path, monkeypatch):
    plan = RunPlan(methods=[], tasks=["digits"], backbones=["toy"], seeds=[0], out=tmp_path, tracking_uri="",
                   cache_dir=tmp_path, quiet=True)
    trained_on, initial = [], []

    def spy_train(model, data, *args, **kwargs):
        trained_on.append(set(data.ids))
        initial.append(model.weight.detach().clone())
        return 0.5
    monkeypatch.setattr(references, "train_reference", spy_train)
    monkeypatch.setattr(references, "build_backbone", lambda *args: nn.Linear(8, 4))  # initialised from torch's RNG
    splits = dataclasses.replace(toy_splits(), task="digits")  # a key names the task's module
    summary = RunSummary("")
    torch.manual_seed(123)  # whatever ran before, a reference starts from its seed
    references.train_references(plan, splits, TOY_RECIPE, "toy", 5, summary)
    assert trained_on == [set(splits.retain.ids) | set(splits.forget.ids), set(splits.retain.ids)]
    assert (summary.cache_hits, summary.cache_misses) == (0, 2)
    torch.manual_seed(456)
    references.train_references(plan, dataclasses.replace(splits, split_hash="other"), TOY_RECIPE, "toy", 5, summary)
    assert torch.equal(initial[0], initial[2]) and torch.equal(initial[1], initial[3])
    references.train_references(plan, splits, TOY_RECIPE, "toy", 5, summary)
    assert (summary.cache_hits, summary.cache_misses, len(trained_on)) == (2, 4, 4)
