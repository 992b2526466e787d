"""Checks on config fields: one table-driven validator that cotlab's config dataclasses share.

A config lists a `Rule` per field, ``{name: Rule(kind, low=..., ...)}``, and calls ``check_fields(self, rules)`` in
``__post_init__``: every field is checked, in field order, and normalised in place (a list of strings becomes a
tuple, a path its str, a numpy integer an int). An error names the field, the value and the rule:
"learning_rate must be >= 0 (a finite number), got inf"; "max_steps must be at least 1, got 0"; "unknown reference
'latest'; known: base, round_start". A value of the wrong type (or NaN, inf) raises `ConfigTypeError`, which is a
`ValueError` and a `TypeError`; a value out of range raises `ConfigError`, a `ValueError`.

Kinds:

- ``"int"``: an integer (Python's or numpy's). Not a bool (``prompts_per_step=true`` is not one prompt), and not a
  float, not even an integral one like 2.0: a float in an integer field is more often a slip (a count computed by a
  division, a rate in the wrong field) than meant, and a silent `int()` would hide it.
- ``"float"``: an int or a float, finite: NaN and inf pass every ``x < 0`` check and then train NaN weights, so they
  are refused here. Not a bool, not a string (YAML reads ``1e-5`` as a string; `load_yaml` reads it as a number).
- ``"bool"``: True or False.
- ``"str"``: a string; with `choices`, one of them (any other value is "unknown").
- ``"path"``: a string or an ``os.PathLike``, kept as its string.
- ``"strs"``: a tuple or list of strings, kept as a tuple; with `choices`, each one of them; `nonempty`: at least one.
- ``"mapping"``: a dict with string keys.

`optional`: None is allowed too. Bounds: `low` and `high`, included unless `low_open` / `high_open`.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, fields
from functools import cache

KINDS = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "a string",
         "path": "a string (a path)", "strs": "a list of strings", "mapping": "a mapping with string keys"}


class ConfigError(ValueError):
    """A config field's value is out of its range or not one of its choices."""


class ConfigTypeError(ConfigError, TypeError):
    """A config field's value has the wrong type (or is NaN or infinite); a ValueError and a TypeError."""


@dataclass(frozen=True)
class Rule:
    kind: str  # one of KINDS
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is refused
    high_open: bool = False  # high itself is refused
    choices: tuple | None = None
    optional: bool = False  # None is allowed
    nonempty: bool = False  # "strs": at least one
    note: str = ""  # said after the rule: " (a group needs two images to compare)", " for DPO"
    label: str = ""  # "unknown <label> 'x'" for a choice, when the field's name says too little ("data breadth")

    def range_text(self) -> str:
        lo = None if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        hi = None if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
        if lo and hi:
            return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if lo and self.kind == "int" and not self.low_open:
            return f"at least {self.low:g}"
        return lo or hi or ""

    def kind_text(self) -> str:
        text = KINDS[self.kind].replace("a ", "a non-empty ", 1) if self.nonempty else KINDS[self.kind]
        text += f" ({self.range_text()})" if self.range_text() else ""
        return f"None or {text}" if self.optional else text


def check(name: str, value, rule: Rule):
    """`value` checked against `rule` (see the module's docstring) and normalised; raises naming `name`."""
    if value is None and rule.optional:
        return None
    if rule.choices is not None and rule.kind == "str":
        if not isinstance(value, str) or value not in rule.choices:
            known = ", ".join(rule.choices) + (" (or None)" if rule.optional else "")
            raise ConfigError(f"unknown {rule.label or name} {value!r}{rule.note}; known: {known}")
        return value
    normalised = _typed(rule.kind, value)
    if normalised is _WRONG:
        raise ConfigTypeError(f"{name} must be {rule.kind_text()}{rule.note}, got {value!r}")
    if rule.kind in ("int", "float"):
        too_low = rule.low is not None and (normalised <= rule.low if rule.low_open else normalised < rule.low)
        too_high = rule.high is not None and (normalised >= rule.high if rule.high_open else normalised > rule.high)
        if too_low or too_high:
            raise ConfigError(f"{name} must be {rule.range_text()}{rule.note}, got {value!r}")
    if rule.kind == "strs":
        if rule.nonempty and not normalised:
            raise ConfigError(f"{name} must be {rule.kind_text()}{rule.note}, got {value!r}")
        unknown = [v for v in normalised if rule.choices is not None and v not in rule.choices]
        if unknown:
            raise ConfigError(f"unknown {name} {', '.join(map(repr, unknown))}; known: {', '.join(rule.choices)}")
    return normalised


_WRONG = object()


def _typed(kind: str, value):
    """`value` as `kind` wants it, or _WRONG."""
    if kind == "int":
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return (value if type(value) is int else int(value)) if ok else _WRONG
    if kind == "float":
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        return (value if isinstance(value, (int, float)) else float(value)) if ok else _WRONG
    if kind == "bool":
        return value if isinstance(value, bool) else _WRONG
    if kind == "str":
        return value if isinstance(value, str) else _WRONG
    if kind == "path":
        path = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
        return path if isinstance(path, str) else _WRONG
    if kind == "strs":
        ok = isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)
        return tuple(value) if ok else _WRONG
    if kind == "mapping":
        return value if isinstance(value, dict) and all(isinstance(k, str) for k in value) else _WRONG
    raise KeyError(f"no kind {kind!r}; kinds: {', '.join(KINDS)}")


def check_fields(config, rules: dict[str, Rule]) -> None:
    """Check every field of the dataclass instance `config` by its rule, in field order, normalising in place (frozen
    dataclasses too). A field without a rule is a bug in the config class: KeyError."""
    for f in fields(config):
        object.__setattr__(config, f.name, check(f.name, getattr(config, f.name), rules[f.name]))


@cache
def _yaml_loader():
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        """YAML 1.2's plain scalars where YAML 1.1 surprises: 1e-5 is a float (1.1 wants 1.0e-5), and only
        true/false are booleans (1.1 also reads no, off, yes, on: `mixed_precision=no` would become False)."""

    bool_tag = "tag:yaml.org,2002:bool"
    Loader.yaml_implicit_resolvers = {first: [(tag, rx) for tag, rx in resolvers if tag != bool_tag]
                                      for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver(bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
                                 list("-+0123456789."))
    return Loader


def load_yaml(text: str):
    """`yaml.safe_load(text)` with YAML 1.2's numbers and booleans: 1e-5 is a number, not the string '1e-5', and
    no/off/yes/on stay strings (only true and false are booleans)."""
    import yaml

    return yaml.load(text, Loader=_yaml_loader())


__all__ = ["ConfigError", "ConfigTypeError", "KINDS", "Rule", "check", "check_fields", "load_yaml"]
