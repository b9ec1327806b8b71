"""A cell's key: everything that determines its result, so a FINISHED run with the same key is not run again."""
from __future__ import annotations

from mubench.core.config import param_text, stable_hash
from mubench.attacks.base import always_scored, attack_code, shadow_need
from mubench.harness import keys

CELL_ENTRY = "mubench.run.cell"  # runs, scores and logs one cell


def cell_key(setup, spec, config, threads: int) -> str:
    """Everything that determines a cell's result; a FINISHED run with this key is not run again. `threads` is the
    number of torch threads the cell runs on: CPU results depend on it. `config`: the spec's Config on the task."""
    plan, splits, recipe, backbone, seed = setup.plan, setup.splits, setup.recipe, setup.backbone, setup.seed
    code = keys.code_version((CELL_ENTRY, keys.REFERENCE_ENTRY, keys.method_module(spec.name),
                              keys.task_module(splits.task), *attack_code(always_scored(splits))))
    return stable_hash({"method": spec.name, "label": spec.row, "config": param_text(config),
                        "task": splits.task, "split": splits.split_hash, "backbone": backbone, "head": plan.head,
                        "pretrained": keys.pretrained_digest(plan.pretrained), "recipe": param_text(recipe),
                        "seed": seed,
                        "preset": plan.preset, "references": keys.REFERENCE_INIT, "code": code,
                        "device": plan.device.type, "threads": threads, **attack_fields(plan)}, length=32)


def attack_fields(plan) -> dict:
    """The run's registered attacks (--attack, mubench.attacks.base.ATTACKS), their shadows and their code; nothing without one, so
    the keys of runs without an attack are what they were. An attack run therefore reruns cells finished without it
    (their runs lack its metrics); the method's numbers are the same, only the run adds the attack's columns."""
    if not plan.attacks:
        return {}
    shadows = bool(shadow_need(plan.attacks))
    entries = attack_code(plan.attacks) + ((keys.SHADOW_ENTRY,) if shadows else ())
    return {"attack": ",".join(plan.attacks), "shadows": plan.shadows if shadows else 0,
            "attack_code": keys.code_version(entries)}
