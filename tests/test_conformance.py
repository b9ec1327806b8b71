"""The conformance kit, over every registered method: a new method is covered without new test code."""
import time
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from mubench.unlearn.api import METHODS, Unlearner
from mubench.core.losses import task_loss
from mubench.core.ranges import Epochs, Rate
from mubench.core.search import IntRange, LogUniform
from mubench.kits.method_kit import CHECKS, reachable_test_paths, toy_cell


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("method", METHODS.names())
def test_conformance(method, check):
    CHECKS[check](method)


# The kit itself: each check must reject a method that breaks its rule.

class PeeksAtTest(Unlearner):
    """Fine-tunes one step on the test split, reached through the cached toy cell."""

    def unlearn(self, model, data, ctx):
        test = toy_cell().splits.test
        loss = task_loss(model(data.preprocess.to_input(test.images)), test.labels, data.kind)
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
        return model


class Unseeded(Unlearner):
    """Draws from a generator seeded by the clock, not by ctx.seed."""

    def unlearn(self, model, data, ctx):
        noise = torch.randn(model.head[-1].bias.shape, generator=torch.Generator().manual_seed(time.time_ns()))
        with torch.no_grad():
            model.head[-1].bias += noise
        return model


class StoresMore(Unlearner):
    def __init__(self, config=None):
        super().__init__(config)
        self.cache = {}

    def unlearn(self, model, data, ctx):
        return model


class MutableConfig(Unlearner):
    @dataclass
    class Config:
        lr: float = 0.1  # not frozen

    def unlearn(self, model, data, ctx):
        return model


class ListField(Unlearner):
    @dataclass(frozen=True)
    class Config:
        widths: list = None  # cannot come from --set strings

    def unlearn(self, model, data, ctx):
        return model


class WrongShape(Unlearner):
    def unlearn(self, model, data, ctx):
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(1))


class Unranged(Unlearner):
    @dataclass(frozen=True)
    class Config:
        lr: float = 0.1  # a bare float: no declared range

    def unlearn(self, model, data, ctx):
        return model


class DefaultOutsideSpace(Unlearner):
    @dataclass(frozen=True)
    class Config:
        lr: Rate = 0.5

    search_space = {"lr": LogUniform(1e-4, 1e-1)}

    def unlearn(self, model, data, ctx):
        return model


class SpaceOutsideRange(Unlearner):
    @dataclass(frozen=True)
    class Config:
        epochs: Epochs = 2

    search_space = {"epochs": IntRange(0, 5)}  # epochs=0 is refused by the Config

    def unlearn(self, model, data, ctx):
        return model


class AblationOutOfRange(Unlearner):
    @dataclass(frozen=True)
    class Config:
        lr: Rate = 0.1

    ablations = {"frozen": {"lr": 0.0}}

    def unlearn(self, model, data, ctx):
        return model


class SameOrderEverySeed(Unlearner):
    """Fine-tunes on retain shuffled with the loader's default seed, whatever ctx.seed is."""

    def unlearn(self, model, data, ctx):
        optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
        for x, y in data.loader("retain", shuffle=True):
            optimiser.zero_grad()
            task_loss(model(x), y, data.kind).backward()
            optimiser.step()
        return model


class ShortOfItsBudget(Unlearner):
    """Derives 10 optimiser steps and takes one."""

    def derived_steps(self, sizes):
        return 10

    def unlearn(self, model, data, ctx):
        optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
        x, y = next(iter(data.loader("retain", seed=ctx.seed)))
        task_loss(model(x), y, data.kind).backward()
        optimiser.step()
        return model


@pytest.mark.parametrize("method, check, says", [
    (ShortOfItsBudget, "derived_steps", "took 1 optimiser steps where its derived_steps gives 10"),
    (Unranged, "ranges_and_space", "declare no range"),
    (DefaultOutsideSpace, "ranges_and_space", "outside its own search space"),
    (SpaceOutsideRange, "ranges_and_space", "reaches values its Config refuses"),
    (AblationOutOfRange, "ranges_and_space", "lr must be > 0"),
    (SameOrderEverySeed, "seeded_order", "shuffles retain in the same order"),
    (PeeksAtTest, "never_reaches_test", "reads test data"),
    (Unseeded, "deterministic", "not deterministic"),
    (StoresMore, "interface", "must store only"),
    (MutableConfig, "interface", "frozen dataclass"),
    (ListField, "config_round_trip", "cannot be set"),
    (WrongShape, "task_kinds", "output shape"),
])
def test_kit_rejects(method, check, says):
    with pytest.raises(Exception, match=says):
        CHECKS[check](method)


def test_kit_finds_test_split_in_a_closure():
    cell = toy_cell()
    leaky = cell.context(log=lambda name, value, step: cell.splits)  # a logger that holds the whole cell
    assert reachable_test_paths({"ctx": leaky}, cell.splits.test)
    assert not reachable_test_paths({"ctx": cell.context(), "data": cell.data}, cell.splits.test)


class Keeps(Unlearner):
    def unlearn(self, model, data, ctx):
        return model


@pytest.mark.parametrize("route", ["data", "ctx"])
def test_the_kit_finds_test_reachable_from_the_data_or_the_context_a_method_is_given(route, monkeypatch):
    from mubench.kits import method_kit as testing
    cell = toy_cell()
    if route == "data":
        monkeypatch.setattr(cell.data, "notes", {"all": cell.splits}, raising=False)
    else:
        context = testing.ToyCell.context
        monkeypatch.setattr(testing.ToyCell, "context", lambda self, monitor=None, log=None: context(
            self, log=lambda name, value, step, held=self.splits: None))
    with pytest.raises(AssertionError, match=f"the test split is reachable from what Keeps is given: .*{route}"):
        CHECKS["never_reaches_test"](Keeps)


def test_the_reachability_scan_ends_on_a_cycle_and_still_finds_test():
    cell = toy_cell()
    a, b = {"name": "a"}, {"name": "b"}
    a["next"], b["next"], b["held"] = b, a, cell.splits.test.labels
    assert reachable_test_paths({"a": a}, cell.splits.test) == ["a['next']['held']"]


def test_the_scan_visits_at_most_limit_objects():
    test = toy_cell().splits.test
    roots = {"first": test.labels, "second": test.images}
    assert reachable_test_paths(roots, test, limit=1) == ["first"]
    assert reachable_test_paths(roots, test, limit=2) == ["first", "second"]


class Registered(Unlearner):
    registered_name = "as-decorated"

    def unlearn(self, model, data, ctx):
        return model


def test_the_kit_rejects_an_entry_point_named_otherwise_than_the_decorator(monkeypatch):
    import importlib.metadata
    ep = importlib.metadata.EntryPoint("as-listed", f"{__name__}:Registered", "mubench.methods")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: [ep] if group == ep.group else [])
    with pytest.raises(AssertionError, match="entry point 'as-listed' points to .*names 'as-decorated'"):
        CHECKS["entry_point"](Registered)


def test_the_registry_refuses_a_plugin_whose_entry_point_and_decorator_disagree():
    import importlib.metadata
    from mubench.core.registry import Registry, RegistryError
    registry = Registry("method", {}, "mubench.methods")
    registry._plugins = {"as-listed": importlib.metadata.EntryPoint("as-listed", f"{__name__}:Registered",
                                                                    "mubench.methods")}
    with pytest.raises(RegistryError, match="registers itself as 'as-decorated'"):
        registry.get("as-listed")
    assert "as-decorated" not in registry.names()
