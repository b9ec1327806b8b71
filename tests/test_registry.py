import subprocess
import sys
from pathlib import Path

import pytest

from mubench.unlearn.api import METHODS
from mubench.train.backbones import BACKBONES
from mubench.core.errors import RegistryError
from mubench.core.registry import Registry
from mubench.data.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]


class Thing:
    pass


class Other:
    pass


def test_decorator_registers_and_get_returns_the_object():
    registry = Registry("widget", {})
    registry.register("thing")(Thing)
    assert registry.get("thing") is Thing
    assert Thing.registered_name == "thing"
    assert registry.names() == ["thing"]


def test_duplicate_name_rejected():
    registry = Registry("widget", {})
    registry.register("thing")(Thing)
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("thing")(Other)


def test_builtin_name_cannot_be_taken_by_another_module():
    registry = Registry("widget", {"thing": "somewhere.else:Thing"})
    with pytest.raises(RegistryError, match="belongs to the built-in"):
        registry.register("thing")(Thing)


def test_unknown_name_lists_known_and_suggests():
    with pytest.raises(RegistryError) as info:
        METHODS.get("fintune")
    message = str(info.value)
    assert "'fintune'" in message and "finetune" in message and "Did you mean 'finetune'?" in message


def test_builtins_are_lazy():
    code = ("import sys, mubench; from mubench.unlearn.api import METHODS; METHODS.names(); "
            "print(sorted(m for m in sys.modules if m.startswith('mubench.methods.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("registry, folder", [(METHODS, "methods"), (TASKS, "datasets")])
def test_every_module_in_folder_is_declared_and_resolves(registry, folder):
    """No hand-maintained list may silently drop a file: each module's registrations are declared built-ins."""
    import importlib
    for path in sorted((ROOT / folder).glob("*.py")):
        if path.stem == "__init__":
            continue
        module = importlib.import_module(f"mubench.{folder}.{path.stem}")
        registered = [name for name, spec in registry._builtins.items() if spec.split(":")[0] == module.__name__]
        assert registered, f"{path.name} declares no built-in {registry.kind}"
        for name in registered:
            assert registry.get(name).registered_name == name


def test_every_builtin_backbone_resolves():
    for name in BACKBONES.names():
        assert callable(BACKBONES.get(name))


class FakeEntryPoint:
    """An installed plugin's entry point: `load` imports it (here: returns or raises) and counts the imports."""

    def __init__(self, name, target=None, dist="widget-pkg"):
        self.name, self.target, self.loads = name, target, 0
        self.dist = type("Dist", (), {"name": dist})() if dist else None

    def load(self):
        self.loads += 1
        if self.target is None:
            raise ImportError(f"no module named {self.name}_impl")
        return self.target


def plugin_registry(monkeypatch, *eps) -> Registry:
    from mubench.core import registry as module
    monkeypatch.setattr(module, "entry_points", lambda group: list(eps) if group == "widgets" else [])
    return Registry("widget", {"thing": f"{__name__}:Thing"}, "widgets")


def test_a_plugin_that_fails_to_import_is_named_by_its_distribution(monkeypatch):
    registry = plugin_registry(monkeypatch, FakeEntryPoint("broken"), FakeEntryPoint("orphan", dist=None))
    with pytest.raises(RegistryError, match="widget 'broken' from plugin distribution 'widget-pkg' failed to import"):
        registry.get("broken")
    with pytest.raises(RegistryError, match="'an unknown distribution' failed to import"):
        registry.get("orphan")
    assert registry.plugin_errors["broken"] == "distribution 'widget-pkg': ImportError: no module named broken_impl"


def test_check_plugins_imports_each_plugin_once_and_never_one_shadowing_a_builtin(monkeypatch):
    loaded, broken, shadow = FakeEntryPoint("loaded", Other), FakeEntryPoint("broken"), FakeEntryPoint("thing")
    fresh = FakeEntryPoint("fresh", type("Fresh", (), {}))
    registry = plugin_registry(monkeypatch, loaded, broken, shadow, fresh)
    assert registry.get("loaded") is Other and loaded.loads == 1
    errors = registry.check_plugins()
    assert list(errors) == ["broken"] and "widget-pkg" in errors["broken"]
    assert (loaded.loads, broken.loads, shadow.loads, fresh.loads) == (1, 1, 0, 1)
    assert registry.get("fresh") is fresh.target and fresh.loads == 1
