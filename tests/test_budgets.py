"""Budgets in the unit the authors scaled: every method with an optimiser takes at least the steps its derivation
(`Unlearner.derived_steps`, argued in its module docstring) gives at the committed tasks' sizes.

Each method runs through the harness's `unlearn_once` on synthetic data of exactly a committed task's split sizes
(tiny 8×8 images, a tiny CNN), and every optimiser step is counted through torch's global step hook.
"""
import copy
import dataclasses

import pytest
import torch

from mubench.unlearn.api import METHODS, DataSizes
from mubench.unlearn import loop
from mubench.unlearn.protocol import split_monitor, unlearn_data, unlearn_once
from mubench.kits.method_kit import counted_steps, single_thread, toy_model, toy_splits

# The committed tasks' sizes: retain, forget, val, classes and the recipe's batch size.
TASKS = {
    "digits random": DataSizes(retain=1068, forget=189, val=180, classes=10, batch_size=64),
    "digits class 3": DataSizes(retain=1129, forget=128, val=180, classes=10, batch_size=64),
    "fer2013-mini": DataSizes(retain=1190, forget=210, val=207, classes=7, batch_size=64),
}
NO_OPTIMISER = {"original", "retrain", "ssd"}
OPTIMISED = sorted(name for name in METHODS.names() if name not in NO_OPTIMISER)


_CELLS: dict = {}


def cell(sizes: DataSizes):
    """(data, original, monitor, retrained) with split sizes exactly `sizes`; the models are untrained tiny CNNs."""
    if sizes not in _CELLS:
        splits = toy_splits(num_outputs=sizes.classes, image_size=8,
                            sizes={"retain": sizes.retain, "forget": sizes.forget, "val": sizes.val, "test": 8})
        data = unlearn_data(splits, sizes.batch_size, torch.device("cpu"))
        assert DataSizes.of(data) == sizes
        original = toy_model(sizes.classes, width=4)
        retrained = toy_model(sizes.classes, width=4, seed=1)
        _CELLS[sizes] = (data, original, split_monitor(splits, data), lambda: (copy.deepcopy(retrained), 0.0))
    return _CELLS[sizes]


def steps_taken(unlearner, sizes: DataSizes) -> int:
    data, original, monitor, retrained = cell(sizes)
    with single_thread(), counted_steps() as count:
        unlearn_once(unlearner, original, data, seed=0, monitor=monitor, retrained=retrained)
    return count[0]


def test_every_method_with_an_optimiser_is_covered():
    assert {"finetune", "neggrad", "neggrad+", "cf-k", "eu-k", "unsir", "bad-teaching", "scrub", "random-label",
            "salun", "l1-sparse"} <= set(OPTIMISED)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", OPTIMISED)
def test_a_method_takes_at_least_the_steps_its_budget_derives(name, task):
    sizes = TASKS[task]
    unlearner = METHODS.get(name)()
    derived = unlearner.derived_steps(sizes)
    if derived == 0 and name == "dlfd":
        pytest.skip("dlfd states no derived budget yet")
    assert derived > 0, f"{name} derives no optimiser steps on {task}"
    taken = steps_taken(unlearner, sizes)
    assert taken >= derived, f"{name} on {task}: {taken} optimiser steps, its budget derives {derived}"


def test_the_authors_step_counts_hold_at_our_sizes():
    """The floors the docstrings derive: NegGrad 47 SGD steps (one pass over MUFAC forget at batch 32), UNSIR
    72 + 32 Adam steps, Bad Teaching 60 Adam steps, whatever the task; passes where passes are the unit."""
    for sizes in TASKS.values():
        assert METHODS.get("neggrad")().derived_steps(sizes) == 47
        assert METHODS.get("unsir")().derived_steps(sizes) >= 72 + 32
        assert METHODS.get("bad-teaching")().derived_steps(sizes) == 60
        assert METHODS.get("finetune")().derived_steps(sizes) == 2 * -(-sizes.retain // sizes.batch_size)
        assert METHODS.get("l1-sparse")().derived_steps(sizes) == 10 * -(-sizes.retain // 256)


def test_a_step_budget_adds_passes_and_cuts_the_last_one_short():
    budget = loop.StepBudget(per_pass=3, epochs=1, min_steps=47)
    assert (budget.total, budget.passes) == (47, 16)
    passes = [list(budget.of(range(3))(epoch)) for epoch in range(budget.passes)]
    assert sum(map(len, passes)) == 47 and passes[-1] == [0, 1]
    assert loop.StepBudget(per_pass=17, epochs=2, min_steps=0).total == 34  # no floor: epochs only
    assert loop.StepBudget(per_pass=17, epochs=5, min_steps=47).total == 85  # epochs already past the floor


def test_a_loop_method_that_ignores_its_step_floor_is_caught(monkeypatch):
    """The wrong variant: the ported epoch, one pass over forget (3 steps on digits random) where the budget is 47."""
    sizes = TASKS["digits random"]
    unlearner = METHODS.get("neggrad")()
    derived = unlearner.derived_steps(sizes)
    monkeypatch.setattr(loop.LoopUnlearner, "budget",
                        lambda self, per_pass: loop.StepBudget(per_pass, self.config.epochs, 0))
    taken = steps_taken(unlearner, sizes)
    assert taken == 3 < derived == 47


def test_a_config_without_a_floor_runs_its_epochs_only():
    sizes = TASKS["digits random"]
    unlearner = METHODS.get("neggrad")(dataclasses.replace(METHODS.get("neggrad").Config(), min_steps=0, epochs=2))
    assert unlearner.derived_steps(sizes) == steps_taken(unlearner, sizes) == 2 * 3
