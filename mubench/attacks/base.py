"""Attacks: registered evaluations of every cell's unlearned model. The paper's MIA (whose FS is in NoMUS) and the
scale-free loss attacks score every cell (`EVERY_CELL`); the others, beside them, when `--attack` names them.

An attack is a class registered with `register_attack(name)`, or a plugin's entry point in the `mubench.attacks` group.
It declares what enters the key of every cell it scores (`code`), the shadow models it needs (`shadows`), the attacks
it reads beside it (`requires`), the metrics it logs as board columns (`columns`) and the footer note that explains
them (`note`). The harness prepares the shadows once per task × backbone × seed, builds the attack on that seed
(`SeedContext`) and calls `score` on each cell's unlearned model (`AttackedCell`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from mubench.core.errors import MubenchError
from mubench.core.registry import Registry

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

ATTACKS: Registry[type["Attack"]] = Registry("attack", {
    "mia": "mubench.attacks.population:PaperMIA",
    "scale-free": "mubench.attacks.population:ScaleFree",
    "mia-efficacy": "mubench.attacks.efficacy:MiaEfficacy",
    "lira": "mubench.attacks.lira:LiRA",
    "ulira": "mubench.attacks.ulira:ULiRA",
    "relearn": "mubench.attacks.relearn:Relearn",
    "probe": "mubench.attacks.probe:Probe",
}, entry_point_group="mubench.attacks")

EVERY_CELL = ("mia", "scale-free")  # scored on every cell, whatever --attack says (the paper's MIA is in NoMUS)
CLASS_WISE = ("mia-efficacy",)  # and on every cell of a class-wise scenario (in the gap to Retrain its boards rank by)
SHADOW_NEEDS = ("", "phi", "models")  # none; each shadow's φ on the pool and its half; its weights as well


def always_scored(splits) -> tuple[str, ...]:
    """The attacks that score every cell of these splits, whatever --attack says."""
    return EVERY_CELL + (CLASS_WISE if splits.forgotten_classes else ())


def installed(name: str) -> type["Attack"] | None:
    """Attack `name`'s class, or None where it is not installed (a store written where a plugin was)."""
    try:
        return ATTACKS.get(name)
    except MubenchError:
        return None


def register_attack(name: str):
    """Class decorator: make an `Attack` subclass available as `--attack <name>`."""
    return ATTACKS.register(name)


class AttackUnavailable(Exception):
    """An attack that cannot be computed on this cell (e.g. too few held-out images); its message says why. The
    cell is scored without the attack's metrics and records the reason (`mubench.unavailable.<attack>`)."""


def scores_or_reason(attack: "Attack", cell: "AttackedCell", unavailable: dict[str, str]) -> dict[str, float]:
    """The attack's scores of the cell, or none with the reason recorded in `unavailable` under its name."""
    try:
        return attack.score(cell)
    except AttackUnavailable as exc:
        unavailable[getattr(type(attack), "registered_name", type(attack).__name__)] = str(exc)
        return {}


@dataclass(frozen=True)
class Column:
    metric: str  # the metric the attack logs on each cell
    header: str  # the board's column header
    digits: int = 3

    def __post_init__(self):
        if not self.metric.isidentifier():
            raise MubenchError(f"attack column metric {self.metric!r} must be a Python identifier (letters, digits, "
                               f"underscores), as MLflow and the board's tables read it.")


@dataclass(frozen=True)
class SeedContext:
    """What an attack reads of the seed whose cells it scores."""
    plan: Any  # mubench.harness.plan.RunPlan
    splits: Any  # mubench.data.splits.Splits: an attack may read every role, test included (it is the evaluator)
    recipe: Any  # mubench.train.training.Recipe
    backbone: str
    seed: int
    shadows: Any  # mubench.attacks.shadows.ShadowSet, or None when no requested attack needs shadows
    retrain_seconds: float  # what training the seed's Retrain took (for costs stated × retrain)
    original: Any = None  # the seed's Original and Retrain models (read only: never train them), or None where the
    retrained: Any = None  # caller has none (attacks that need them say they are unavailable)


@dataclass
class AttackedCell:
    """One cell's unlearned model as the attacks see it. `examples` collects per-example scores for the report's
    figures, as `<name>_members` and `<name>_nonmembers` arrays."""
    model: "nn.Module"
    spec: Any  # mubench.harness.plan.MethodSpec of the cell's method (U-LiRA unlearns its shadows with it)
    config: Any = None  # the method's Config on the cell's task, as the cell ran it
    examples: dict = field(default_factory=dict)
    _memo: dict = field(default_factory=dict, repr=False)

    def memo(self, name: str, compute: Callable[[], Any]) -> Any:
        """`compute()` once per cell, shared by the attacks that need it (e.g. φ of the model on the pool)."""
        if name not in self._memo:
            self._memo[name] = compute()
        return self._memo[name]


class Attack:
    """Base class of a registered attack; a subclass sets the class attributes and writes `score`."""
    title: str = ""  # how boards and figures name it
    code: tuple[str, ...] = ()  # modules whose source enters the key of every cell the attack scores
    shadows: str = ""  # one of SHADOW_NEEDS
    requires: tuple[str, ...] = ()  # attacks that run beside it (registered names)
    columns: tuple[Column, ...] = ()  # in board order
    example_scores: str = ""  # what the per-example scores it saves in `cell.examples` are (the report's captions)

    def __init__(self, seed: SeedContext):
        self.seed = seed

    def score(self, cell: AttackedCell) -> dict[str, float]:
        """The attack's metrics of the cell's model: at least every declared column's metric. Raises
        AttackUnavailable, with the reason, when the cell's sizes leave the attack undefined."""
        raise NotImplementedError

    @classmethod
    def note(cls, cells: "pd.DataFrame") -> str:
        """The board footer's sentences on this attack, from the cells it scored (each a row of logged metrics)."""
        return ""


def resolve_attacks(text: str) -> tuple[str, ...]:
    """`--attack` as registered names, each after the attacks it requires; "none" (or empty): no attack beside
    those that score every cell (naming one of those adds nothing)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or names == ["none"]:
        return ()
    if "none" in names:
        raise MubenchError(f"--attack {text!r} mixes 'none' with attacks; give 'none' alone or a list of attacks.")
    resolved: list[str] = []

    def add(name: str, chain: tuple[str, ...] = ()) -> None:
        canonical = ATTACKS.resolve(name)
        if canonical in chain:
            raise MubenchError(f"attack {canonical!r} requires itself (through {' → '.join(chain)}).")
        for needed in ATTACKS.get(canonical).requires:
            add(needed, (*chain, canonical))
        if canonical not in resolved:
            resolved.append(canonical)
    for name in names:
        add(name)
    return tuple(name for name in resolved if name not in EVERY_CELL)


def shadow_need(names: tuple[str, ...]) -> str:
    """The most any of `names` needs of the shadow models: "", "phi" or "models"."""
    needs = [ATTACKS.get(name).shadows for name in names]
    for need in needs:
        if need not in SHADOW_NEEDS:
            raise MubenchError(f"an attack declares shadows={need!r}; valid: {', '.join(map(repr, SHADOW_NEEDS))}.")
    return max(needs, key=SHADOW_NEEDS.index, default="")


def attack_code(names: tuple[str, ...]) -> tuple[str, ...]:
    """The modules whose source enters the key of a cell scored by `names`: each attack's own module and `code`."""
    entries = []
    for name in names:
        cls = ATTACKS.get(name)
        entries += [cls.__module__, *cls.code]
    return tuple(dict.fromkeys(entries))
