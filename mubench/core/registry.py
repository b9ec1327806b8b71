"""One typed registry for methods, tasks and backbones.

Built-in entries are declared lazily as ``name -> "module:attr"`` so that importing mubench imports
no method; third-party entries come from an entry-point group. The decorator returned by
``Registry.register`` is the only way an object gets a name.
"""
from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Callable, Generic, TypeVar

from mubench.core.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, builtins: dict[str, str], entry_point_group: str | None = None):
        self.kind = kind
        self._builtins = dict(builtins)
        self._group = entry_point_group
        self._entries: dict[str, T] = {}
        self._plugins: dict[str, object] | None = None  # name -> EntryPoint, read on first use
        self.plugin_errors: dict[str, str] = {}  # name -> why its distribution failed to load

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            self._add(name, obj)
            return obj
        return decorate

    def _add(self, name: str, obj: T) -> None:
        existing = self._entries.get(name)
        if existing is not None and existing is not obj:
            raise RegistryError(f"{self.kind} name {name!r} is already registered by "
                                f"{_where(existing)}; choose another name for {_where(obj)}.")
        declared = self._builtins.get(name)
        if declared is not None and declared.split(":")[0] != getattr(obj, "__module__", None):
            raise RegistryError(f"{self.kind} name {name!r} belongs to the built-in {declared}; "
                                f"choose another name for {_where(obj)}.")
        if hasattr(obj, "__dict__") and isinstance(obj, type):
            obj.registered_name = name
        self._entries[name] = obj

    def _entry_points(self) -> dict[str, object]:
        if self._plugins is None:
            self._plugins = {}
            if self._group:
                for ep in entry_points(group=self._group):
                    self._plugins.setdefault(ep.name, ep)
        return self._plugins

    def names(self) -> list[str]:
        """Every known name, built-in or plugin, without importing any of them."""
        return sorted(set(self._builtins) | set(self._entries) | set(self._entry_points()))

    def get(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        if name in self._builtins:
            module, attr = self._builtins[name].split(":")
            obj = getattr(importlib.import_module(module), attr)
            if self._entries.get(name) is not obj:
                raise RegistryError(f"built-in {self.kind} {name!r} ({module}:{attr}) did not register "
                                    f"itself under that name; its decorator must say {name!r}.")
            return obj
        ep = self._entry_points().get(name)
        if ep is not None:
            return self._load_plugin(name, ep)
        raise RegistryError(self.unknown_message(name))

    def _load_plugin(self, name: str, ep) -> T:
        dist = getattr(getattr(ep, "dist", None), "name", None) or "an unknown distribution"
        try:
            obj = ep.load()
        except Exception as exc:  # any import-time failure of third-party code
            why = f"{type(exc).__name__}: {exc}"
            self.plugin_errors[name] = f"distribution {dist!r}: {why}"
            raise RegistryError(f"{self.kind} {name!r} from plugin distribution {dist!r} failed to "
                                f"import ({why}); fix or uninstall {dist!r}.") from None
        decorated = vars(obj).get("registered_name") if isinstance(obj, type) else None
        if decorated and decorated != name:
            self.plugin_errors[name] = f"distribution {dist!r}: entry point {name!r} names {decorated!r}"
            raise RegistryError(f"entry point {name!r} of plugin distribution {dist!r} points to a {self.kind} that "
                                f"registers itself as {decorated!r}; give the entry point and the decorator the "
                                f"same name.")
        if self._entries.get(name) is not obj:
            self._add(name, obj)
        return obj

    def check_plugins(self) -> dict[str, str]:
        """Try to load every plugin; return name -> error for those that failed."""
        for name, ep in self._entry_points().items():
            if name not in self._entries and name not in self._builtins:
                try:
                    self._load_plugin(name, ep)
                except RegistryError:
                    pass
        return dict(self.plugin_errors)

    def unknown_message(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(known)}.{hint}"

    def resolve(self, name: str) -> str:
        """Check a name exists (without importing it); raise the 'did you mean' error if not."""
        if name not in self.names():
            raise RegistryError(self.unknown_message(name))
        return name


def _where(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
