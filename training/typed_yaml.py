"""Frozen dataclasses built from YAML mappings, typed field by field, with dotted ``key=value`` overrides.

The recipe loader's machinery, apart from what a recipe holds: every value is converted to its field's
type (fractions such as ``8/255`` for floats, lists for tuples, nested dataclasses for mappings), an
unknown key is refused by its dotted name, and a dataclass may check its raw mapping first
(``check_raw``) for rules that need to know what was written, not just what resulted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import fields
from fractions import Fraction
from typing import Any, get_args, get_origin, get_type_hints

import yaml


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the key and the fix."""


def parse_number(value: Any, key: str) -> float:
    """A float from a number or a fraction string such as ``8/255``; ``key`` names the value in errors."""
    if isinstance(value, bool):
        raise RecipeError(f"{key}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(Fraction(str(value).strip()))
    except (ValueError, ZeroDivisionError):
        raise RecipeError(f"{key}: expected a number such as 0.1 or 8/255, got {value!r}") from None


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise RecipeError(f"{key}: expected a mapping, got {value!r}")
        return build(tp, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{key}: expected a list, got {value!r}")
        inner = get_args(tp)[0]
        return tuple(_convert(inner, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is not None and type(None) in get_args(tp):  # Optional[X]
        return None if value is None else _convert([a for a in get_args(tp) if a is not type(None)][0], value, key)
    if tp is float:
        return parse_number(value, key)
    if tp is int:
        if isinstance(value, bool) or not float(parse_number(value, key)).is_integer():
            raise RecipeError(f"{key}: expected an integer, got {value!r}")
        return int(parse_number(value, key))
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise RecipeError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        return str(value)
    return value


def build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a dict, refusing unknown keys by their dotted name."""
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    if hasattr(cls, "check_raw"):
        cls.check_raw(data, prefix)
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else key
            raise RecipeError(f"unknown recipe key {where!r}; valid keys here: {', '.join(names)}")
    kwargs = {k: _convert(hints[k], v, f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # RecipeError included; PGDConfig raises ValueError
        raise RecipeError(f"{prefix or 'recipe'}: {exc}") from None


def apply_override(data: dict[str, Any], override: str) -> None:
    """``a.b.c=value`` (value parsed as YAML) into the nested dict."""
    if "=" not in override:
        raise RecipeError(f"override {override!r} must look like key=value (e.g. stage1.epochs=2)")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise RecipeError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)
