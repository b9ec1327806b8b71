"""Small, fast stand-ins for a real cell, for method tests and for the conformance kit.

`toy_cell()` gives a tiny synthetic task (multiclass or multilabel), a small CNN with the same
`Classifier` interface as the real backbones (features(), stages()), trained on retain ∪ forget
until it memorises, and the `UnlearnData` / `UnlearnContext` a method receives.
"""
from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import functools
import inspect
import tempfile
import types
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mubench.unlearn.api import METHODS, UnlearnContext, UnlearnData, Unlearner
from mubench.train.backbones import Classifier, make_head
from mubench.core.config import build_config, config_from_params, param_text
from mubench.core.ranges import check_config, space_outside_ranges, unranged_fields
from mubench.core.search import outside_space
from mubench.data.splits import Preprocess, Split, Splits
from mubench.core.errors import MubenchError
from mubench.core.losses import TaskKind
from mubench.unlearn.protocol import split_monitor, unlearn_once
from mubench.train.training import train_reference
from mubench.data.tasks import Recipe

TOY_SIZES = {"retain": 96, "forget": 32, "val": 32, "test": 32}


def toy_splits(kind: TaskKind = TaskKind.MULTICLASS, num_outputs: int = 4, image_size: int = 12,
               seed: int = 0, sizes: dict[str, int] | None = None) -> Splits:
    """Class-dependent patterns plus heavy noise: learnable, yet memorisable sample by sample."""
    sizes = sizes or TOY_SIZES
    g = torch.Generator().manual_seed(seed)
    patterns = torch.rand(num_outputs, 3, image_size, image_size, generator=g)
    parts = {}
    for role, n in sizes.items():
        if kind == TaskKind.MULTICLASS:
            labels = torch.arange(n) % num_outputs
            signal = patterns[labels]
        else:
            labels = (torch.rand(n, num_outputs, generator=g) < 0.5).float()
            signal = (labels[:, :, None, None, None] * patterns[None]).sum(1) / num_outputs
        pixels = (0.25 * signal + 0.75 * torch.rand(n, 3, image_size, image_size, generator=g)).clamp(0, 1)
        parts[role] = Split((pixels * 255).round().to(torch.uint8), labels, tuple(f"{role}-{i}" for i in range(n)))
    return Splits(f"toy-{kind.value}", kind, num_outputs, Preprocess((0.5,) * 3, (0.5,) * 3), "toy", **parts)


def toy_model(num_outputs: int, width: int = 16, seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    body = nn.Sequential(OrderedDict(
        conv1=nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()),
        layer1=nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()),
        layer2=nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width),
                             nn.ReLU()),
        pool=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())))
    return Classifier(body, make_head(2 * width, num_outputs, "linear"), ["conv1", "layer1", "layer2"])


TOY_RECIPE = Recipe(epochs=30, batch_size=32, lr=0.05, schedule="cosine")


@dataclass
class ToyCell:
    splits: Splits
    original: nn.Module
    retrained: nn.Module
    data: UnlearnData
    seed: int

    def context(self, monitor=None, log=None) -> UnlearnContext:
        """A fresh context; `monitor` overrides the real one (e.g. to script FS readings).

        Its callables close over forget, val and the retrained model only, never over this cell (which holds test).
        """
        return UnlearnContext(device=torch.device("cpu"), seed=self.seed, quiet=True,
                              _monitor=monitor or split_monitor(self.splits, self.data),
                              _retrained=self.retrained_copy(), _log_metric=log or (lambda name, value, step: None))

    def retrained_copy(self):
        """ctx's source of the Retrain reference: a fresh copy each call, charged one second."""
        retrained = self.retrained
        return lambda: (copy.deepcopy(retrained), 1.0)

    def model(self) -> nn.Module:
        """A private copy of the original, as the harness hands it to a method."""
        return copy.deepcopy(self.original)


_CELLS: dict = {}


def toy_cell(kind: TaskKind = TaskKind.MULTICLASS, seed: int = 0) -> ToyCell:
    """A trained toy cell (cached per process: training takes a few seconds)."""
    key = (kind, seed)
    if key not in _CELLS:
        splits = toy_splits(kind, seed=seed)
        num = splits.num_outputs
        train_set = splits.retain.concat(splits.forget)
        models = {}
        with single_thread():
            for role, data in (("original", train_set), ("retrain", splits.retain)):
                models[role] = toy_model(num, seed=seed)
                train_reference(models[role], data, kind, splits.preprocess, TOY_RECIPE, torch.device("cpu"), seed)
        data = UnlearnData(splits.retain, splits.forget, splits.val, kind, num, splits.preprocess,
                           TOY_RECIPE.batch_size, torch.device("cpu"))
        _CELLS[key] = ToyCell(splits, models["original"], models["retrain"], data, seed)
    return _CELLS[key]


@contextlib.contextmanager
def single_thread():
    """Torch on one CPU thread: on toy-sized tensors, extra threads cost more (start-up, contention) than they save."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# --- Conformance kit -------------------------------------------------------------------------------------
# Checks any method must pass, for a plugin author's own tests: `check_method("my-method")` runs them all on
# the toy cells (seconds); each `check_*` can also be called alone. A failure raises AssertionError.

def method_class(method: "str | type[Unlearner]") -> "type[Unlearner]":
    return METHODS.get(method) if isinstance(method, str) else method


def _name(cls: type) -> str:
    return cls.registered_name or cls.__name__


def quick_config(cls: "type[Unlearner]") -> "Unlearner.Config":
    """The default Config with `epochs` (and any `*_epochs`) fields capped at 1, to keep the kit fast."""
    config = cls.Config()
    quick = {f.name: 1 for f in dataclasses.fields(config)
             if (f.name == "epochs" or f.name.endswith("_epochs"))
             and isinstance(getattr(config, f.name), int) and getattr(config, f.name) > 1}
    return dataclasses.replace(config, **quick)


def run_on_toy(method, cell: ToyCell, config=None) -> nn.Module:
    """Unlearn a copy of the cell's original through the harness's protocol (mubench.unlearn.protocol.unlearn_once)."""
    cls = method_class(method)
    unlearner = cls(config if config is not None else quick_config(cls))
    with single_thread():
        return unlearn_once(unlearner, cell.original, cell.data, seed=cell.seed,
                            monitor=split_monitor(cell.splits, cell.data), retrained=cell.retrained_copy()).model


def _fail(message: str) -> None:
    raise AssertionError(message)


def check_interface(method) -> None:
    """An Unlearner subclass with a frozen dataclass Config whose defaults construct, and an `__init__` that
    stores the config and nothing else."""
    cls = method_class(method)
    if not (isinstance(cls, type) and issubclass(cls, Unlearner)):
        _fail(f"{cls!r} is not a subclass of mubench.unlearn.api.Unlearner.")
    name = _name(cls)
    if inspect.isabstract(cls):
        _fail(f"{name} leaves abstract methods unimplemented: {sorted(cls.__abstractmethods__)}.")
    if not dataclasses.is_dataclass(cls.Config) or not cls.Config.__dataclass_params__.frozen:
        _fail(f"{name}.Config must be a frozen dataclass (@dataclass(frozen=True)).")
    default = cls()
    if vars(default).keys() != {"config"} or default.config != cls.Config():
        _fail(f"{name}() must store only its default Config in self.config; it holds {sorted(vars(default))}.")
    config = cls.Config()
    if cls(config).config is not config:
        _fail(f"{name}(config) must keep the given Config object as self.config.")
    try:
        cls(object())
    except MubenchError:
        pass
    else:
        _fail(f"{name}(config) accepted a config that is not a {name}.Config.")
    if not isinstance(cls.supports_multilabel, bool):
        _fail(f"{name}.supports_multilabel must be True or False.")
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    for table in ("ablations", "task_defaults"):
        for key, changes in getattr(cls, table).items():
            unknown = set(changes) - fields
            if unknown:
                _fail(f"{name}.{table}[{key!r}] sets {sorted(unknown)}, which are not fields of {name}.Config.")
    if cls.registered_name and METHODS.get(cls.registered_name) is not cls:
        _fail(f"{name} is registered under {cls.registered_name!r}, but that name resolves to another class.")


def _configs(cls) -> dict[str, object]:
    configs = {"default": cls.Config()}
    configs.update({f"ablation {k}": cls.Config(**v) for k, v in cls.ablations.items()})
    configs.update({f"task {k}": cls.Config(**v) for k, v in cls.task_defaults.items()})
    return configs


def check_config_round_trip(method) -> None:
    """Every Config (default, ablation variants, per-task defaults) survives the `--set` strings and the
    MLflow params it is logged as, and cannot be changed after construction."""
    cls = method_class(method)
    name = _name(cls)
    for label, config in _configs(cls).items():
        text = param_text(config)
        if build_config(cls.Config, name, text) != config:
            _fail(f"{name} {label} Config does not round-trip through --set strings {text}.")
        stored = {key: str(value) for key, value in text.items()}  # MLflow keeps params as strings
        if config_from_params(cls.Config, stored) != config:
            _fail(f"{name} {label} Config does not round-trip through MLflow params {stored}.")
    field_names = [f.name for f in dataclasses.fields(cls.Config)]
    if field_names:
        try:
            setattr(cls.Config(), field_names[0], None)
        except dataclasses.FrozenInstanceError:
            return
        _fail(f"{name}.Config allows assignment to {field_names[0]!r}; it must be frozen.")


def _check_output(cls, cell: ToyCell, result) -> None:
    name = _name(cls)
    if not isinstance(result, nn.Module):
        _fail(f"{name}.unlearn returned a {type(result).__name__}; it must return a torch.nn.Module.")
    x = cell.splits.preprocess.to_input(cell.splits.val.images[:8])
    with torch.no_grad():
        expected, got = cell.original.eval()(x), result.eval()(x)
    if got.shape != expected.shape:
        _fail(f"{name} on {cell.splits.task}: output shape {tuple(got.shape)}, expected {tuple(expected.shape)}.")
    if not torch.isfinite(got).all():
        _fail(f"{name} on {cell.splits.task}: the unlearned model outputs non-finite values.")


def check_task_kinds(method) -> None:
    """Multiclass: unlearn returns a module with the original's output shape. Multilabel: the same, or, when
    `supports_multilabel` is False, the harness refuses the cell with a MubenchError."""
    cls = method_class(method)
    cell = toy_cell(TaskKind.MULTICLASS)
    _check_output(cls, cell, run_on_toy(cls, cell))
    cell = toy_cell(TaskKind.MULTILABEL)
    if cls.supports_multilabel:
        _check_output(cls, cell, run_on_toy(cls, cell))
    elif cls.registered_name:
        _check_refused(cls, cell)


def _check_refused(cls, cell: ToyCell) -> None:
    from mubench.run.cell import run_cell
    from mubench.harness.plan import MethodSpec, RunPlan, SeedSetup
    from mubench.harness.references import References
    with tempfile.TemporaryDirectory() as tmp:
        plan = RunPlan([], [], [], [cell.seed], Path(tmp), "", Path(tmp), quiet=True)
        record = {"train_seconds": 1.0, "key": "toy"}
        refs = References(cell.model(), copy.deepcopy(cell.retrained), record, record)
        try:
            spec = MethodSpec(cls.registered_name)
            run_cell(SeedSetup(plan, cell.splits, TOY_RECIPE, "toy", cell.seed), refs, spec, spec.config_for("toy"))
        except MubenchError:
            return
    _fail(f"{_name(cls)} has supports_multilabel=False, but the harness ran it on a multi-label task.")


def _same_state(a: nn.Module, b: nn.Module) -> list[str]:
    """Names of state-dict entries that differ (or exist in only one of the two)."""
    sa, sb = a.state_dict(), b.state_dict()
    return sorted(k for k in sa.keys() | sb.keys()
                  if k not in sa or k not in sb or sa[k].shape != sb[k].shape or not torch.equal(sa[k], sb[k]))


def check_deterministic(method) -> None:
    """Two runs with the same seed on CPU give bit-identical state dicts."""
    cls = method_class(method)
    cell = toy_cell(TaskKind.MULTICLASS)
    differ = _same_state(run_on_toy(cls, cell), run_on_toy(cls, cell))
    if differ:
        _fail(f"{_name(cls)} is not deterministic under a fixed seed; these entries differ between two runs: "
              f"{differ[:5]}.")


def check_never_reaches_test(method) -> None:
    """`test` is reachable from nothing a method is given, and the result is unchanged when test is replaced.

    The replacement is in place (the cached toy cell's test tensors are scrambled, then restored), so any
    route to the data, however indirect, sees it.
    """
    cls = method_class(method)
    cell = toy_cell(TaskKind.MULTICLASS)
    leaks = reachable_test_paths({"data": cell.data, "ctx": cell.context(), "unlearner": cls(quick_config(cls))},
                                 cell.splits.test)
    if leaks:
        _fail(f"the test split is reachable from what {_name(cls)} is given: {leaks[:3]}.")
    before = run_on_toy(cls, cell)
    test = cell.splits.test
    images, labels = test.images.clone(), test.labels.clone()
    try:
        test.images.copy_(255 - images)
        test.labels.copy_(1 - labels if cell.splits.kind == TaskKind.MULTILABEL
                          else (labels + 1) % cell.splits.num_outputs)
        after = run_on_toy(cls, cell)
    finally:
        test.images.copy_(images)
        test.labels.copy_(labels)
    differ = _same_state(before, after)
    if differ:
        _fail(f"{_name(cls)}'s result changes when the test split is replaced (entries {differ[:5]}): "
              f"it reads test data.")


def reachable_test_paths(roots: dict[str, object], test: Split, limit: int = 200_000) -> list[str]:
    """Paths (attributes, items, closure cells) from `roots` to the test split or its tensors."""
    targets = {test.images.untyped_storage().data_ptr(), test.labels.untyped_storage().data_ptr()}
    found, seen = [], set()
    queue = collections.deque(roots.items())
    while queue and len(seen) < limit:
        path, obj = queue.popleft()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type, types.ModuleType, torch.device,
                                               torch.dtype, torch.Generator)) or obj is None:
            continue
        seen.add(id(obj))
        if obj is test or (isinstance(obj, tuple) and obj == test.ids and obj):
            found.append(path)
            continue
        if isinstance(obj, torch.Tensor):
            if obj.untyped_storage().data_ptr() in targets:
                found.append(path)
            continue
        queue.extend(_children(path, obj))
    return found


def _children(path: str, obj) -> list[tuple[str, object]]:
    if isinstance(obj, dict):
        return [(f"{path}[{k!r}]", v) for k, v in obj.items()] + [(f"{path} key", k) for k in obj]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [(f"{path}[{i}]", v) for i, v in enumerate(obj)]
    if isinstance(obj, types.MethodType):
        return [(f"{path}.__self__", obj.__self__), (f"{path}.__func__", obj.__func__)]
    if isinstance(obj, functools.partial):
        return [(f"{path}.func", obj.func), (f"{path}.args", obj.args), (f"{path}.keywords", obj.keywords)]
    out = []
    if isinstance(obj, types.FunctionType):
        names = obj.__code__.co_freevars
        for var, cell in zip(names, obj.__closure__ or ()):
            try:
                out.append((f"{path}<closure {var}>", cell.cell_contents))
            except ValueError:  # a cell not yet filled
                pass
        out += [(f"{path}.__defaults__", obj.__defaults__), (f"{path}.__kwdefaults__", obj.__kwdefaults__)]
    if hasattr(obj, "__dict__"):
        out += [(f"{path}.{k}", v) for k, v in vars(obj).items()]
    for slot in getattr(type(obj), "__slots__", ()):
        if isinstance(slot, str) and hasattr(obj, slot):
            out.append((f"{path}.{slot}", getattr(obj, slot)))
    return out


def check_ranges_and_space(method) -> None:
    """Every int and float field declares its valid range (mubench.core.ranges); the defaults, ablations and task
    defaults lie in it; the search space names fields, holds the defaults and stays inside the ranges."""
    cls = method_class(method)
    name = _name(cls)
    bare = unranged_fields(cls.Config)
    if bare:
        _fail(f"{name}.Config fields {bare} declare no range; type them with mubench.core.ranges "
              f"(e.g. `lr: Rate = 0.01`, `epochs: Epochs = 2`) or Annotated[int, Range(lo, hi)].")
    for label, config in _configs(cls).items():
        try:
            check_config(config, f"{name} {label}")
        except MubenchError as exc:
            _fail(str(exc))
    if cls.search_space:
        outside = outside_space(cls.search_space, cls.Config())
        if outside:
            _fail(f"{name}'s defaults lie outside its own search space: {outside}; the tuned configuration must "
                  f"compete with them.")
        beyond = space_outside_ranges(cls.Config, cls.search_space)
        if beyond:
            _fail(f"{name}.search_space reaches values its Config refuses: {beyond}.")


def _shuffle_seeds(cls, cell: ToyCell, seed: int) -> list[tuple[str, int]]:
    """(role, seed) of every shuffled loader the method asks `data.loader` for, unlearning under `seed`."""
    asked = []
    loader = UnlearnData.loader

    def spy(self, role, *args, shuffle: bool = True, seed: int = 0, **kwargs):
        if shuffle:
            asked.append((role, seed))
        return loader(self, role, *args, shuffle=shuffle, seed=seed, **kwargs)

    UnlearnData.loader = spy
    try:
        with single_thread():
            unlearn_once(cls(quick_config(cls)), cell.original, cell.data, seed=seed,
                         monitor=split_monitor(cell.splits, cell.data), retrained=cell.retrained_copy())
    finally:
        UnlearnData.loader = loader
    return asked


def check_seeded_order(method) -> None:
    """Shuffled loaders follow the grid seed: `data.loader(..., seed=ctx.seed)`, so that seeds differ in data order
    (the default seed 0 would give every seed of a grid the same order)."""
    cls = method_class(method)
    cell = toy_cell(TaskKind.MULTICLASS)
    first, second = _shuffle_seeds(cls, cell, 0), _shuffle_seeds(cls, cell, 1)
    same = sorted({role for (role, a), (_, b) in zip(first, second) if a == b})
    if same:
        _fail(f"{_name(cls)} shuffles {', '.join(same)} in the same order under grid seeds 0 and 1; pass "
              f"seed=ctx.seed (or a value derived from it) to data.loader.")


def check_entry_point(method) -> None:
    """A plugin's entry-point name is the name its @register_method decorator gives."""
    from importlib.metadata import entry_points
    cls = method_class(method)
    for ep in entry_points(group="mubench.methods"):
        if ep.value.split(":")[0] != cls.__module__ or ep.value.split(":")[-1] != cls.__qualname__:
            continue
        if cls.registered_name and ep.name != cls.registered_name:
            _fail(f"entry point {ep.name!r} points to {_name(cls)}, which @register_method names "
                  f"{cls.registered_name!r}; give both the same name.")


@contextlib.contextmanager
def counted_steps():
    """A one-item list holding the number of `optimizer.step()` calls, of any optimiser, inside the block."""
    from torch.optim.optimizer import register_optimizer_step_post_hook
    count = [0]
    handle = register_optimizer_step_post_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    try:
        yield count
    finally:
        handle.remove()


def check_derived_steps(method) -> None:
    """The method takes at least the optimiser steps its `derived_steps` gives for the data it is handed (counted
    through torch's optimiser step hook; the kit's configuration, epochs capped at 1)."""
    from mubench.unlearn.api import DataSizes
    cls = method_class(method)
    cell = toy_cell(TaskKind.MULTICLASS)
    config = quick_config(cls)
    derived = cls(config).derived_steps(DataSizes.of(cell.data))
    with counted_steps() as count:
        run_on_toy(cls, cell, config)
    if count[0] < derived:
        _fail(f"{_name(cls)} took {count[0]} optimiser steps where its derived_steps gives {derived}; take at least "
              f"the steps the budget derives (a LoopUnlearner: set min_steps).")


CHECKS = {
    "interface": check_interface,
    "config_round_trip": check_config_round_trip,
    "ranges_and_space": check_ranges_and_space,
    "seeded_order": check_seeded_order,
    "entry_point": check_entry_point,
    "task_kinds": check_task_kinds,
    "deterministic": check_deterministic,
    "derived_steps": check_derived_steps,
    "never_reaches_test": check_never_reaches_test,
}


def check_method(method) -> None:
    """Run every conformance check on `method` (a registered name or an Unlearner subclass)."""
    for check in CHECKS.values():
        check(method)
