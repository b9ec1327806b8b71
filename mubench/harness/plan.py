"""What a run is made of: the plan, its method specs and cell jobs, and the summary it returns.

`method_specs` turns `--methods`, `--set` and `--ablate` into validated (method, Config) pairs before anything runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from mubench.core.store import REFERENCES, BoardKey
from mubench.data.splits import Splits
from mubench.data.tasks import Recipe
from mubench.unlearn.api import METHODS, Unlearner
from mubench.core.config import build_config, parse_assignments, value_text
from mubench.core.errors import MubenchError



@dataclass(frozen=True)
class MethodSpec:
    name: str  # registered name
    overrides: tuple[tuple[str, object], ...] = ()  # typed Config fields from --set and the ablation variant
    variant: str = ""  # the ablation variant these overrides include, if any

    @property
    def set_overrides(self) -> tuple[tuple[str, object], ...]:
        """The overrides that came from --set (not from the ablation variant)."""
        changes = METHODS.get(self.name).ablations.get(self.variant, {}) if self.variant else {}
        return tuple((k, v) for k, v in self.overrides if k not in changes)

    @property
    def base(self) -> str:
        """The row of the configuration before any ablation: `dlfd`, or `dlfd[lr=0.01]` with --set."""
        sets = ",".join(f"{k}={value_text(v)}" for k, v in self.set_overrides)
        return f"{self.name}[{sets}]" if sets else self.name

    @property
    def row(self) -> str:
        """The leaderboard row: one method with one resolved configuration, e.g. `dlfd[lr=0.01,no-ot]`."""
        parts = [f"{k}={value_text(v)}" for k, v in self.set_overrides] + ([self.variant] if self.variant else [])
        return f"{self.name}[{','.join(parts)}]" if parts else self.name

    def config_for(self, task: str) -> Unlearner.Config:
        """The method's Config on `task`: class defaults, then the task's named defaults, then overrides."""
        cls = METHODS.get(self.name)
        return cls.Config(**{**cls.task_defaults.get(task, {}), **dict(self.overrides)})


def method_specs(names: list[str], assignments: tuple[str, ...] | list[str], ablate: bool = False,
                 references: bool = True, unusual_ok: bool = False) -> list[MethodSpec]:
    """One spec per method; with `ablate`, also one per ablation variant the method declares; with `references`,
    the Original and Retrain rows first whether or not they were named."""
    overrides = parse_assignments(assignments)
    for method in overrides:
        if method not in names:
            raise MubenchError(f"--set names method {method!r}, which is not among the methods to run "
                               f"({', '.join(names)}).")
    if references:
        names = [r for r in REFERENCES if r not in names] + list(names)
    specs = []
    for name in names:
        cls = METHODS.get(name)
        config = build_config(cls.Config, name, overrides.get(name, {}), unusual_ok=unusual_ok)  # names, types, ranges
        typed = {field: getattr(config, field) for field in overrides.get(name, {})}
        specs.append(MethodSpec(name, tuple(typed.items())))
        if ablate:
            specs += [MethodSpec(name, tuple({**typed, **changes}.items()), variant)
                      for variant, changes in cls.ablations.items()]
    return specs


@dataclass(frozen=True)
class RunPlan:
    """Everything a run was asked for, resolved and checked by the CLI before it is built; never changed after."""
    methods: list[MethodSpec]
    tasks: list[str]
    backbones: list[str]
    seeds: list[int]
    out: Path
    tracking_uri: str
    cache_dir: Path
    preset: str = "default"
    device: torch.device = torch.device("cpu")
    data_root: Path | None = None
    head: str = "linear"
    pretrained: Path | None = None
    quiet: bool = False
    force: bool = False  # rerun cells already FINISHED in the store
    plots: bool = True  # loss histograms per cell and a t-SNE per seed (mubench.run.cell_figures); --no-plots turns them off
    command: str = ""
    executor: str = "local"  # where the cells run: mubench.run.executors.EXECUTORS
    ray_address: str | None = None  # an existing Ray cluster to join; None starts a local one for the run
    threads: int = 0  # torch threads per cell; 0: torch's default (all cores) locally, 1 per Ray task
    workers: int = 1  # local executor: worker processes (1: the cells one after another in this process)
    # What the run's first line estimated a reference's training to take, per (task, scenario, backbone)
    reference_estimates: dict[tuple, float] = field(default_factory=dict)
    scenarios: list[str] = field(default_factory=lambda: ["random"])  # what is forgotten: mubench.data.scenarios
    task_options: dict[str, dict[str, str]] = field(default_factory=dict)  # --task-set: task -> option -> value
    attacks: tuple[str, ...] = ()  # --attack: registered attacks beside the paper's MIA (attacks.base), resolved
    shadows: int = 16  # --shadows: shadow models per task × backbone × seed, for attacks that need them


class TaskKey(NamedTuple):
    """A task's data under one scenario: what a run loads once."""
    task: str
    scenario: str


class SeedKey(NamedTuple):
    """The cells that share data and references: task × scenario × backbone × seed."""
    task: str
    scenario: str
    backbone: str
    seed: int

    @property
    def data(self) -> TaskKey:
        return TaskKey(self.task, self.scenario)


class SeedSetup(NamedTuple):
    """What the cells of one seed share: the plan, the task's splits and recipe, the backbone and the seed (in the
    order the functions that train a seed's references and shadows take them)."""
    plan: RunPlan
    splits: Splits
    recipe: Recipe
    backbone: str
    seed: int


@dataclass(frozen=True)
class CellJob:
    """One cell of the grid not yet FINISHED in the store: what an executor runs."""
    spec: MethodSpec
    config: Unlearner.Config  # spec.config_for(task), resolved once for the cell's key, its run and its record
    key: str  # cell_keys.cell_key(): what makes a FINISHED run of this cell skippable
    group: SeedKey

    @classmethod
    def of(cls, spec: MethodSpec, key: str, task: str, backbone: str, seed: int,
           scenario: str = "random") -> "CellJob":
        return cls(spec, spec.config_for(task), key, SeedKey(task, scenario, backbone, seed))

    @property
    def task(self) -> str:
        return self.group.task

    @property
    def scenario(self) -> str:
        return self.group.scenario

    @property
    def backbone(self) -> str:
        return self.group.backbone

    @property
    def seed(self) -> int:
        return self.group.seed


@dataclass
class CellFailure:
    label: str
    task: str
    backbone: str
    seed: int
    error: str


@dataclass
class RunSummary:
    parent_run_id: str
    boards: list[BoardKey] = field(default_factory=list)  # the boards this run wrote to (every thread count)
    failures: list[CellFailure] = field(default_factory=list)
    cells: int = 0
    skipped: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    killed: list[str] = field(default_factory=list)  # RUNNING runs of dead processes, now marked KILLED

    def merge(self, other: "RunSummary") -> None:
        """Add the counts and failures of part of the grid run elsewhere (an executor's worker)."""
        self.failures += other.failures
        self.cells += other.cells
        self.skipped += other.skipped
        self.cache_hits += other.cache_hits
        self.cache_misses += other.cache_misses
