"""Imports run one way: world -> policy -> rewards -> losses -> training -> evaluation -> experiments -> the tools
(bench, plotting) -> cli. A module imports from its own layer and lower ones only, with the base modules (the run store
and its cache keys, prompt files, checkpoint loading, state files, config checks, kernels, the machine record) below
every room. Function-level imports count as much as module-level ones: an import inside a function that runs back up
is still upward. No module takes another's private (underscored) names, and module-level imports form no cycle. Read
by `ast`, so no module is executed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cotlab"

# cotlab.<top> -> its layer, lowest first. `cotlab` itself is the package's __init__ (the version string).
BASE = ("", "checks", "state_files", "kernels", "store", "prompt_files", "checkpoints", "machine")
ORDER = (BASE, ("world",), ("policy",), ("rewards",), ("losses",), ("training",), ("evaluation",), ("experiments",),
         ("bench", "plotting"), ("cli", "__main__"))
NAMES = ("base", "world", "policy", "rewards", "losses", "training", "evaluation", "experiments", "tools", "cli")
LAYER = {top: rank for rank, tops in enumerate(ORDER) for top in tops}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    """Whether the dotted cotlab name is a module or package on disk (not a name defined inside one)."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(name: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The cotlab modules an import statement in module `name` loads (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "cotlab"]
    if node.level:
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source.split(".")[0] != "cotlab":
        return []
    subs = [f"{source}.{alias.name}" for alias in node.names if is_module(f"{source}.{alias.name}")]
    return subs or [source]


def layer_of(name: str) -> int:
    top = name.split(".")[1] if "." in name else ""
    if top not in LAYER:
        raise KeyError(f"{name} is in no layer: place cotlab.{top} in tests/test_layers.py's ORDER")
    return LAYER[top]


def imports(path: Path) -> list[tuple[int, str, bool]]:
    """Every (line, imported cotlab module, at module level?) of the file at `path`."""
    name, tree = module_name(path), ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node: ast.AST, top_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.extend((child.lineno, target, top_level)
                             for target in imported_modules(name, path.name == "__init__.py", child))
            visit(child, top_level and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, True)
    return found


def upward_imports(path: Path) -> list[str]:
    """One line per import in `path` that runs back up the layers, naming the module, the line and both layers."""
    name = module_name(path)
    own = layer_of(name)
    return [f"{path.relative_to(ROOT)}:{line}: {name} ({NAMES[own]}) imports {target} ({NAMES[layer_of(target)]})"
            for line, target, _ in imports(path) if layer_of(target) > own]


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in MODULES:
        layer_of(module_name(path))


def test_imports_run_one_way():
    upward = [line for path in MODULES for line in upward_imports(path)]
    assert not upward, "imports that run back up the layers:\n" + "\n".join(upward)


def test_no_private_names_across_modules():
    """What one module uses of another is public: no `from cotlab.x import _name` (dunders such as __version__ aside)."""
    private = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and imported_modules(module_name(path), path.name == "__init__.py", node):
                private += [f"{path.relative_to(ROOT)}:{node.lineno}: {alias.name}" for alias in node.names
                            if alias.name.startswith("_") and not alias.name.endswith("__")]
    assert not private, "private names imported from another module:\n" + "\n".join(private)


def test_no_import_cycles_at_module_level():
    """Module-level imports between cotlab modules form no cycle (a package's __init__ counts as a module), so no
    module needs an import placed after its definitions."""
    edges = {module_name(path): {target for _, target, top in imports(path) if top} for path in MODULES}
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                walk(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node, [node])


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """A planted upward import, inside a function, is reported with its module, line and layers."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "cotlab" / "policy").mkdir(parents=True)
    (tmp_path / "cotlab" / "experiments").mkdir()
    for package in ("cotlab", "cotlab/policy", "cotlab/experiments"):
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "cotlab" / "experiments" / "store.py").write_text("")
    planted = tmp_path / "cotlab" / "policy" / "vq.py"
    planted.write_text("import torch\n\n\ndef key():\n    from ..experiments import store\n    return store\n")
    assert upward_imports(planted) == [
        "cotlab/policy/vq.py:5: cotlab.policy.vq (policy) imports cotlab.experiments.store (experiments)"]
