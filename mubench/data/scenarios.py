"""What is forgotten: a scenario turns a task's splits into the retain / forget sets of one forgetting request.

- `random`: the task's own split (the papers' protocol: a fixed forget subset). The default.
- `class:<label>`: forget every training image of one class; retain is the rest of the training set, so the Retrain
  reference never sees the class (class-wise forgetting as UNSIR, Bad Teaching, SCRUB and SalUn report it). The class
  is its index or its name in the task's label names (`class:happy`, an image folder's class folder); a name is
  resolved to its index, so both spellings are one scenario, one split hash and one board.
- `identity`: forget every training image of a seeded set of people (or families), about as many images as the
  task's own forget set; only tasks whose data names identities have it (MUCAC by identity, MUFAC by family).

val and test (and unseen) are never changed. The scenario is part of the split's hash, so of every key, run and board.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import torch

from mubench.data.splits import Split, Splits
from mubench.core.errors import MubenchError
from mubench.core.losses import TaskKind

IDENTITY_SEED = 0  # the people forgotten are the same for every seed of a grid, so seeds stay paired
KINDS = ("random", "class:<label or name>", "identity")


@dataclass(frozen=True)
class Scenario:
    kind: str  # "random" | "class" | "identity"
    label: int | None = None  # the forgotten class of a class-wise scenario, once known
    name: str | None = None  # the class as named on the command line, until resolved to its index

    @property
    def text(self) -> str:
        """As stored in the runs: `random`, `class:3`, `identity` (`class:happy` only before it is resolved)."""
        if self.kind != "class":
            return self.kind
        return f"class:{self.label}" if self.label is not None else f"class:{self.name}"

    @property
    def slug(self) -> str:
        """As it appears in a board's file name: `class3`, `identity` (random adds nothing)."""
        return f"class{self.label}" if self.kind == "class" else self.kind


def parse_scenario(text: str) -> Scenario:
    text = text.strip()
    if text in ("random", "identity"):
        return Scenario(text)
    kind, _, label = text.partition(":")
    if kind == "class" and label.strip().lstrip("-").isdigit():
        return Scenario("class", int(label))
    if kind == "class" and label.strip():
        return Scenario("class", name=label.strip())
    raise MubenchError(f"--scenario {text!r} is not a scenario; valid scenarios: {', '.join(KINDS)} "
                       f"(e.g. class:3).")


def resolve_class(scenario: Scenario, task: str, names: tuple[str, ...]) -> Scenario:
    """A class-wise scenario naming its class by one of the task's label names, as its index (exact name first,
    then the one name that matches ignoring case); other scenarios unchanged."""
    if scenario.kind != "class" or scenario.label is not None:
        return scenario
    if scenario.name in names:
        return Scenario("class", names.index(scenario.name))
    folded = [i for i, name in enumerate(names) if name.casefold() == scenario.name.casefold()]
    if len(folded) == 1:
        return Scenario("class", folded[0])
    valid = f"its classes are {', '.join(names)} (or their indices 0–{len(names) - 1})" if names \
        else "it names no classes, so give the class's index"
    raise MubenchError(f"--scenario {scenario.text}: task {task!r} has no class {scenario.name!r}; {valid}.")


def check_scenario(scenario: Scenario, task: str, kind: TaskKind, num_outputs: int, has_identities: bool,
                   names: tuple[str, ...] | None = ()) -> None:
    """One clear sentence, before any work, for a scenario the task cannot have. `names`: the task's label names,
    None while they are known only once its data is read (a class named then is checked then)."""
    if scenario.kind == "class":
        if kind != TaskKind.MULTICLASS:
            raise MubenchError(f"--scenario {scenario.text} needs a single-label task; {task!r} is multi-label "
                               f"(use random or identity).")
        if names is None and scenario.label is None:
            return
        scenario = resolve_class(scenario, task, names or ())
        if not 0 <= scenario.label < num_outputs:
            raise MubenchError(f"--scenario {scenario.text}: task {task!r} has classes 0–{num_outputs - 1}; "
                               f"choose one of them.")
    if scenario.kind == "identity" and not has_identities:
        raise MubenchError(f"--scenario identity needs a task whose data names people or families; {task!r} has "
                           f"none (use random or class:<label>).")


def apply_scenario(splits: Splits, scenario: Scenario, names: tuple[str, ...] = ()) -> Splits:
    """The splits of `scenario`: the training set (retain ∪ forget) divided anew; val, test, unseen unchanged.
    `names`: the task's label names, which a class-wise scenario may name its class by."""
    if scenario.kind == "random":
        return splits
    scenario = resolve_class(scenario, splits.task, names)
    check_scenario(scenario, splits.task, splits.kind, splits.num_outputs, bool(splits.identities))
    pool = splits.retain.concat(splits.forget)
    if scenario.kind == "class":
        forget_mask = pool.labels.numpy() == scenario.label
        if not forget_mask.any():
            raise MubenchError(f"--scenario {scenario.text}: task {splits.task!r} has no training image of class "
                               f"{scenario.label}; choose a class it has.")
        classes = (scenario.label,)
    else:
        forget_mask = identity_forget_mask(pool, splits.identities, len(splits.forget))
        classes = ()
    forget_index = torch.from_numpy(np.flatnonzero(forget_mask))
    retain_index = torch.from_numpy(np.flatnonzero(~forget_mask))
    forget_ids = "\n".join(pool.ids[i] for i in forget_index.tolist())
    digest = hashlib.sha256(f"{splits.split_hash}:{scenario.text}:{forget_ids}".encode()).hexdigest()
    return replace(splits, retain=pool.subset(retain_index), forget=pool.subset(forget_index), split_hash=digest,
                   scenario=scenario.text, forgotten_classes=classes,
                   notes={**splits.notes, "scenario": scenario.text, "scenario_of": splits.split_hash})


def identity_forget_mask(pool: Split, identities: dict[str, str], target: int) -> np.ndarray:
    """Every image of a seeded set of identities, added one identity at a time until at least `target` images."""
    people = np.array([identities[i] for i in pool.ids])
    order = np.random.RandomState(IDENTITY_SEED).permutation(sorted(set(people)))
    chosen, count = set(), 0
    sizes = {p: int(n) for p, n in zip(*np.unique(people, return_counts=True))}
    for person in order:
        if count >= target or len(chosen) == len(sizes) - 1:  # someone must stay in retain
            break
        chosen.add(person)
        count += sizes[person]
    return np.isin(people, sorted(chosen))
