"""Turn `--methods` and `--set` into validated (method, Config) pairs before anything runs."""
from __future__ import annotations

from mubench.api import METHODS
from mubench.config import build_config, parse_assignments
from mubench.errors import MubenchError
from mubench.harness import MethodSpec


def method_specs(names: list[str], assignments: tuple[str, ...] | list[str], ablate: bool = False) -> list[MethodSpec]:
    """One spec per method; with `ablate`, also one per ablation variant the method declares (label name[variant])."""
    overrides = parse_assignments(assignments)
    for method in overrides:
        if method not in names:
            raise MubenchError(f"--set names method {method!r}, which is not among the methods to run "
                               f"({', '.join(names)}).")
    specs = []
    for name in names:
        cls = METHODS.get(name)
        config = build_config(cls.Config, name, overrides.get(name, {}))  # validates names and types now
        typed = {field: getattr(config, field) for field in overrides.get(name, {})}
        specs.append(MethodSpec(name, tuple(typed.items())))
        if ablate:
            specs += [MethodSpec(name, tuple({**typed, **changes}.items()), f"{name}[{variant}]")
                      for variant, changes in cls.ablations.items()]
    return specs
