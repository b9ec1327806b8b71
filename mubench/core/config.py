"""Method configs from the command line (`--set method.field=value`) and their stable hash."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from typing import Any, Literal, get_args, get_origin

from mubench.core.errors import MubenchError
from mubench.core.ranges import check_value, field_ranges


def parse_assignments(items: tuple[str, ...] | list[str], option: str = "--set",
                      example: str = "method.field=value, e.g. finetune.lr=0.01") -> dict[str, dict[str, str]]:
    """["scrub.alpha=0.1"] -> {"scrub": {"alpha": "0.1"}}, raw strings, not yet typed."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        target, eq, value = item.partition("=")
        method, dot, field_name = target.rpartition(".")
        if not eq or not dot or not method or not field_name:
            raise MubenchError(f"{option} {item!r} is malformed; write it as {example}.")
        out.setdefault(method, {})[field_name] = value
    return out


def build_config(config_cls: type, method: str, raw: dict[str, str], option: str = "--set", unusual_ok: bool = True):
    """A Config instance with the raw strings converted to each field's declared type, each given value within its
    field's declared range (and, unless `unusual_ok`, under its usual bound)."""
    hints = typing.get_type_hints(config_cls)
    known = {f.name for f in dataclasses.fields(config_cls)}
    values = {}
    for name, text in raw.items():
        if name not in known:
            raise MubenchError(f"{option} {method}.{name}: {method} has no field {name!r}; "
                               f"its fields are: {', '.join(sorted(known)) or '(none)'}.")
        values[name] = _convert(text, hints[name], f"{option} {method}.{name}")
    ranges = field_ranges(config_cls)
    for name, value in values.items():
        if name in ranges:
            check_value(f"{option} {method}.{name}", name, value, ranges[name], unusual_ok)
    return config_cls(**values)


def _convert(text: str, hint: Any, where: str) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        for choice in args:
            if str(choice) == text:
                return choice
        raise MubenchError(f"{where}={text!r}: expected one of {', '.join(map(str, args))}.")
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(text, arg, where)
            except MubenchError as exc:
                errors.append(str(exc))
        raise MubenchError(errors[0] if errors else f"{where}={text!r}: cannot convert.")
    if origin is tuple:
        inner = args[0] if args else str
        return tuple(_convert(part.strip(), inner, where) for part in text.split(",") if part.strip())
    if hint is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise MubenchError(f"{where}={text!r}: expected a boolean (true or false).")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise MubenchError(f"{where}={text!r}: expected {'an integer' if hint is int else 'a number'}.") from None
    if hint is str:
        return text
    raise MubenchError(f"{where}: fields of type {hint} cannot be set from the command line.")


def config_params(config) -> dict[str, Any]:
    """Flat field -> value mapping (for MLflow params and hashing)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def config_from_params(config_cls: type, params: dict[str, str]):
    """Rebuild a Config from the strings MLflow stored (the inverse of config_params)."""
    return build_config(config_cls, config_cls.__qualname__, {k: value_text(v) for k, v in params.items()})


def value_text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def param_text(config) -> dict[str, str]:
    return {name: value_text(v) for name, v in config_params(config).items()}


def stable_hash(payload: Any, length: int = 16) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
