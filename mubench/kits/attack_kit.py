"""The conformance kit for attacks (mubench.attacks.base), as `mubench.kits.method_kit.check_method` is for methods.

`check_attack("my-attack")` scores the toy cell's Original (mubench.kits.method_kit) on a toy seed, with two toy shadows
trained on it where the attack needs shadow φ, and checks what the harness relies on: every declared column comes
back as a finite number, the same numbers twice, the model is left as it was handed over, and per-example scores
come in `<name>_members` / `<name>_nonmembers` pairs. An attack that needs the shadows' weights (U-LiRA) builds real
backbones from the run's cache, which a toy cannot give: the kit checks its declarations only.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch

from mubench.attacks.base import ATTACKS, SHADOW_NEEDS, Attack, AttackedCell, Column, SeedContext
from mubench.harness.plan import MethodSpec, RunPlan
from mubench.attacks.shadows import ShadowSet, train_shadow
from mubench.kits.method_kit import TOY_RECIPE, _fail, _same_state, single_thread, toy_cell, toy_model

TOY_SHADOWS = 2


def attack_class(attack: "str | type[Attack]") -> type[Attack]:
    return ATTACKS.get(attack) if isinstance(attack, str) else attack


def check_declarations(attack) -> None:
    """The class attributes the harness reads: columns, shadows, requirements."""
    cls = attack_class(attack)
    name = getattr(cls, "registered_name", cls.__name__)
    if not (isinstance(cls, type) and issubclass(cls, Attack)):
        _fail(f"attack {name!r} must be a subclass of mubench.attacks.base.Attack.")
    if not cls.columns or not all(isinstance(c, Column) for c in cls.columns):
        _fail(f"attack {name!r} must declare its board columns as a non-empty tuple of mubench.attacks.base.Column.")
    if len({c.metric for c in cls.columns}) != len(cls.columns):
        _fail(f"attack {name!r} declares a column metric twice.")
    if cls.shadows not in SHADOW_NEEDS:
        _fail(f"attack {name!r} declares shadows={cls.shadows!r}; valid: {', '.join(map(repr, SHADOW_NEEDS))}.")
    for required in cls.requires:
        ATTACKS.get(required)


def toy_shadows(cell) -> ShadowSet:
    """Two toy shadows of the toy task (seed 0), trained as mubench.attacks.shadows trains real ones."""
    splits = cell.splits
    with single_thread():
        trained = [train_shadow(splits, TOY_RECIPE, lambda: toy_model(splits.num_outputs), torch.device("cpu"), 0, k)
                   for k in range(TOY_SHADOWS)]
    return ShadowSet(np.array([phi for phi, _, _ in trained]), np.array([member for _, member, _ in trained]),
                     len(splits.forget), sum(seconds for _, _, seconds in trained), 0, TOY_SHADOWS)


def check_scores(attack) -> None:
    """Finite declared metrics, the same twice, the model untouched, per-example scores in pairs."""
    cls = attack_class(attack)
    name = getattr(cls, "registered_name", cls.__name__)
    if cls.shadows == "models":
        return
    cell = toy_cell()
    plan = RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=Path("."), tracking_uri="", cache_dir=Path("."),
                   quiet=True, attacks=(name,), shadows=TOY_SHADOWS)
    context = SeedContext(plan, cell.splits, TOY_RECIPE, "toy", 0, toy_shadows(cell) if cls.shadows else None, 1.0,
                          cell.original, cell.retrained)
    model = cell.model().eval()
    before = copy.deepcopy(model)
    runs = []
    for _ in range(2):
        attacked = AttackedCell(model, MethodSpec("original"), MethodSpec("original").config_for("toy"))
        runs.append((cls(context).score(attacked), attacked.examples))
    (scores, examples), (again, _) = runs
    missing = [c.metric for c in cls.columns if c.metric not in scores]
    if missing:
        _fail(f"attack {name!r} declares columns it did not return: {missing}.")
    bad = {k: v for k, v in scores.items() if not (isinstance(v, (int, float)) and math.isfinite(v))}
    if bad:
        _fail(f"attack {name!r} returned metrics that are not finite numbers: {bad}.")
    if scores != again:
        _fail(f"attack {name!r} is not deterministic: two scorings of one model differ "
              f"({ {k: (v, again.get(k)) for k, v in scores.items() if again.get(k) != v} }).")
    changed = _same_state(model, before)
    if changed or model.training:
        _fail(f"attack {name!r} changed the model it scores ({changed[:5] or 'its train/eval mode'}); it must read the "
              f"model only.")
    prefixes = {k.rsplit("_", 1)[0] for k in examples}
    if set(examples) != {f"{p}_{side}" for p in prefixes for side in ("members", "nonmembers")}:
        _fail(f"attack {name!r} saved per-example scores {sorted(examples)}; save them in <name>_members and "
              f"<name>_nonmembers pairs.")
    if any(np.asarray(v).ndim != 1 for v in examples.values()):
        _fail(f"attack {name!r} saved per-example scores that are not one score per example.")


def check_attack(attack) -> None:
    """Run every conformance check on `attack` (a registered name or an Attack subclass)."""
    check_declarations(attack)
    check_scores(attack)
