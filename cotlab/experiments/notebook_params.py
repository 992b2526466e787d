"""Notebook parameters checked in the kernel: an unknown name (a typo) or a value of the wrong type is refused.

Papermill injects ``-p NAME VALUE`` as plain assignments in a cell after the one tagged ``parameters``, and warns, but
runs on, when NAME is not a parameter. Each chapter therefore runs, right after its parameters cell::

    from cotlab.experiments.notebook_params import check_parameters
    check_parameters("00_shapeworld", globals())

which raises :class:`ParameterError` naming the bad parameter and the notebook's parameters, so that the run fails in
that cell (a ``PapermillExecutionError`` carrying the message) instead of a minute later, or never.

A notebook's parameters and their types come from :data:`cotlab.experiments.tiers.PRESETS` (whose keys equal the
names of the parameters cell; tests/test_project.py checks it). A value is accepted if it has the type of the presets'
values: an int where they hold a float, anything where one holds None; a bool is neither an int nor a float; a list's
items are checked one level down against the items the presets' lists hold. A global counts as an unknown parameter
unless it is private (``_x``), IPython's, code (a module, class or function) or bound by one of the notebook's own
cells (so that Run All in a kernel that already ran the chapter passes; a typo of such a name goes unnoticed).
"""
from __future__ import annotations

import ast
import json
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cotlab.experiments.tiers import PRESETS, TIERS

#: Names IPython's kernel puts in every notebook's globals.
IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})
NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"


class ParameterError(ValueError):
    """A notebook was given a parameter it does not have, or a value of the wrong type."""


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _type_names(types_: Iterable[type]) -> str:
    return " or ".join(sorted({t.__name__ for t in types_}))


def _accepts(allowed: set[type], value: Any) -> bool:
    """Whether ``value``'s type is one of ``allowed`` (an int passes for a float; a bool only for a bool)."""
    if type(None) in allowed:
        return True
    kind = type(value)
    return kind in allowed or (kind is int and float in allowed)


def expected_types(notebook: str) -> dict[str, tuple[set[type], set[type]]]:
    """Per parameter of ``notebook``: the types its tier presets hold, and (for lists) the types of their items."""
    presets = [PRESETS[notebook][tier] for tier in TIERS]
    return {name: ({type(p[name]) for p in presets},
                   {type(item) for p in presets if isinstance(p[name], list) for item in p[name]})
            for name in presets[0]}


def notebook_names(notebook: str, directory: Path = NOTEBOOKS_DIR) -> set[str]:
    """The names the notebook's own code cells bind (assignments, imports, definitions, loop targets), so that a
    kernel that already ran the notebook is not taken for one given unknown parameters; empty if it is not found."""
    path = directory / f"{notebook}.ipynb"
    if not path.is_file():
        return set()
    names: set[str] = set()
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        try:
            tree = ast.parse("".join(cell["source"]))
        except SyntaxError:  # IPython syntax (magics); such a cell binds nothing we need to know about
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
    return names


def unknown_parameters(known: Iterable[str], namespace: Mapping[str, Any], ignore: Iterable[str] = ()) -> list[str]:
    """Names of ``namespace`` that look injected but are not in ``known``: not private (``_x``), not IPython's own,
    not in ``ignore``, and bound to a value (modules, functions and classes are code, never parameters)."""
    skip = set(known) | IPYTHON_NAMES | set(ignore)
    return sorted(name for name, value in namespace.items()
                  if not name.startswith("_") and name not in skip
                  and not isinstance(value, (types.ModuleType, type)) and not callable(value))


def type_problem(name: str, value: Any, allowed: set[type], item_types: set[type]) -> str | None:
    """Why ``value`` is no value for parameter ``name`` (None if it is one)."""
    if not _accepts(allowed, value):
        hint = " (papermill -p passes text; give lists and dicts with -y, as YAML)" if (
            isinstance(value, str) and allowed & {list, dict}) else ""
        return (f"parameter {name!r} = {_short(value)} is a {type(value).__name__}; "
                f"expected {_type_names(allowed)}{hint}")
    if isinstance(value, list) and item_types:
        bad = [item for item in value if not _accepts(item_types, item)]
        if bad:
            return (f"parameter {name!r} = {_short(value)} holds {_short(bad[0])}, a {type(bad[0]).__name__}; "
                    f"expected a list of {_type_names(item_types)}")
    return None


def check_parameters(notebook: str, namespace: Mapping[str, Any], ignore: Iterable[str] = ()) -> None:
    """Raise :class:`ParameterError` if ``namespace`` (a notebook's ``globals()`` after papermill's injected cell)
    holds a name that is not a parameter of ``notebook`` (a stem of :data:`PRESETS`) or a parameter whose value has
    the wrong type. ``ignore``: further names to let pass (e.g. bound by cells before the parameters cell)."""
    if notebook not in PRESETS:
        raise ParameterError(f"no parameters known for notebook {notebook!r}; notebooks: {', '.join(PRESETS)}")
    expected = expected_types(notebook)
    known = f"notebook {notebook}'s parameters are: {', '.join(expected)}"
    unknown = unknown_parameters(expected, namespace, set(ignore) | notebook_names(notebook))
    if unknown:
        given = ", ".join(f"{name!r} = {_short(namespace[name])}" for name in unknown)
        raise ParameterError(f"unknown parameter{'s' if len(unknown) > 1 else ''} {given}; {known}")
    problems = [type_problem(name, namespace[name], *expected[name]) for name in expected if name in namespace]
    problems = [p for p in problems if p]
    if problems:
        raise ParameterError(f"{'; '.join(problems)}; {known}")


__all__ = ["ParameterError", "check_parameters", "expected_types", "notebook_names", "type_problem",
           "unknown_parameters"]
