"""Project invariants: pins agree across the three dependency files, notebooks are committed clean and parameterised
consistently with the tier presets, the table of contents matches the chapters, and the CLI behaves."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import nbformat
import pytest
import yaml

from cotlab import __version__, cli
from cotlab.experiments.reproduce import (CHAPTERS, DEPENDS, ReproduceError, book_timings, chapter_stamp, record_timing,
                                         stage_sources,
                                         reproduce)
from cotlab.experiments.tiers import APPENDIX, PRESETS, TIERS, notebook_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FORBIDDEN = ("torchvision", "open-clip", "open-clip-torch", "timm")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines: list[str], where: str) -> dict[str, str]:
    """Parse `name==version` requirement lines (comments, blank lines and pip options such as `-e .` skipped)."""
    pins: dict[str, str] = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = _PIN.match(line)
        assert match, f"{where}: {line!r} is not pinned with =="
        name, version = _norm(match.group(1)), match.group(2)
        assert name not in pins, f"{where}: {name} listed twice"
        pins[name] = version
    return pins


def _pyproject_pins() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return _pins(data["project"]["dependencies"], "pyproject.toml")


def _environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item]
    assert len(pip_lists) == 1, "environment.yml needs exactly one pip: list"
    conda = [item for item in env["dependencies"] if isinstance(item, str)]
    assert "python=3.11" in conda and "pip" in conda
    return _pins(pip_lists[0], "environment.yml")


def _lock_pins() -> dict[str, str]:
    return _pins((ROOT / "requirements.txt").read_text().splitlines(), "requirements.txt")


def test_direct_dependency_pins_agree():
    direct, environment, lock = _pyproject_pins(), _environment_pins(), _lock_pins()
    assert set(environment) == set(direct), (
        f"environment.yml and pyproject.toml list different packages: "
        f"only in environment.yml {sorted(set(environment) - set(direct))}, "
        f"only in pyproject.toml {sorted(set(direct) - set(environment))}"
    )
    for name, version in direct.items():
        assert environment[name] == version, f"{name}: pyproject {version}, environment.yml {environment[name]}"
        assert name in lock, f"{name} is a direct dependency but missing from requirements.txt"
        assert lock[name] == version, f"{name}: pyproject {version}, requirements.txt {lock[name]}"


def test_torch_pinned_and_no_forbidden_packages():
    for where, pins in (
        ("pyproject.toml", _pyproject_pins()),
        ("environment.yml", _environment_pins()),
        ("requirements.txt", _lock_pins()),
    ):
        assert pins.get("torch") == "2.13.0", f"{where}: torch must be pinned to 2.13.0, got {pins.get('torch')}"
        bad = sorted(name for name in pins if name in FORBIDDEN)
        assert not bad, f"{where}: forbidden packages {bad}"


def test_parse_pins_rejects_unpinned_requirement():
    with pytest.raises(AssertionError, match="not pinned"):
        _pins(["numpy>=2"], "x")
    assert _pins(["PyYAML==6.0.3  # comment", "-e .", ""], "x") == {"pyyaml": "6.0.3"}


def test_notebooks_exist():
    assert NOTEBOOKS, "no notebooks found under notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{path.name}: cell {index} has outputs"
        assert cell.execution_count is None, f"{path.name}: cell {index} has execution count {cell.execution_count}"


def _parameters_cells(nb) -> list:
    return [cell for cell in nb.cells if "parameters" in cell.get("metadata", {}).get("tags", [])]


def _parameter_names(source: str) -> list[str]:
    names = []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            assert isinstance(target, ast.Name), f"parameters cell assigns to {ast.unparse(target)}, not a plain name"
            names.append(target.id)
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_one_parameters_cell_matching_presets(path):
    nb = nbformat.read(path, as_version=4)
    cells = _parameters_cells(nb)
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged 'parameters', expected exactly one"
    assert cells[0].cell_type == "code"
    names = _parameter_names(cells[0].source)
    assert len(names) == len(set(names)), f"{path.name}: a parameter is assigned twice: {names}"
    for tier in TIERS:
        preset = notebook_parameters(path.stem, tier)
        assert set(names) == set(preset), (
            f"{path.name}, tier {tier}: notebook parameters {sorted(names)} != preset keys {sorted(preset)}"
        )
    defaults: dict = {}
    exec(cells[0].source, defaults)  # plain assignments of literals
    assert {k: defaults[k] for k in names} == notebook_parameters(path.stem, "default"), (
        f"{path.name}: the parameters cell's values are not the default tier's (JupyterLab runs them as they are)")


def _toc_files(node) -> list[str]:
    files = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("root", "file"):
                files.append(value)
            else:
                files.extend(_toc_files(value))
    elif isinstance(node, list):
        for item in node:
            files.extend(_toc_files(item))
    return files


def test_the_written_toc_lists_the_registered_chapters_and_every_notebook(tmp_path):
    stage_sources(ROOT, tmp_path)
    toc = yaml.safe_load((tmp_path / "book" / "_toc.yml").read_text())
    assert toc["format"] == "jb-book"
    files = _toc_files(toc)
    for entry in files:
        candidates = [ROOT / f"{entry}{suffix}" for suffix in ("", ".md", ".ipynb")]
        assert any(c.is_file() for c in candidates), f"_toc.yml lists {entry}, which is not a file"
    toc_notebooks = [Path(f).name for f in files if f.startswith("notebooks/")]
    assert toc_notebooks == CHAPTERS == list(PRESETS), f"toc chapters {toc_notebooks} != CHAPTERS {CHAPTERS}"
    assert {p.stem for p in NOTEBOOKS} == set(CHAPTERS), (
        f"notebooks/ holds {[p.stem for p in NOTEBOOKS]}, the registry (tiers.PRESETS) lists {CHAPTERS}"
    )
    (appendix,) = [part for part in toc["parts"] if part["caption"] == "Appendix"]
    assert [Path(c["file"]).name for c in appendix["chapters"]] == list(APPENDIX)
    assert not (ROOT / "book" / "_toc.yml").exists(), "the table of contents is written from the registry, not kept"


def test_chapter_stamps_change_with_the_chapter_and_what_it_depends_on(tmp_path):
    import shutil

    assert set(DEPENDS) == set(CHAPTERS)
    assert all(set(deps) <= set(CHAPTERS[:CHAPTERS.index(c)]) for c, deps in DEPENDS.items())  # upstream comes first
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    before = {c: chapter_stamp(c, "smoke", tmp_path, {}) for c in CHAPTERS}
    assert before == {c: chapter_stamp(c, "smoke", tmp_path, {}) for c in CHAPTERS}  # stable
    assert chapter_stamp("00_shapeworld", "default", tmp_path, {}) != before["00_shapeworld"]  # other parameters
    edited = tmp_path / "notebooks" / "01_base_model.ipynb"
    edited.write_text(edited.read_text().replace("The base model", "The base model (edited)", 1))
    after = {c: chapter_stamp(c, "smoke", tmp_path, {}) for c in CHAPTERS}
    changed = {c for c in CHAPTERS if after[c] != before[c]}
    downstream = {"01_base_model"}
    for chapter in CHAPTERS:  # in order, so the closure is complete in one pass
        if downstream & set(DEPENDS[chapter]):
            downstream.add(chapter)
    assert changed == downstream and "00_shapeworld" not in changed


def test_book_timings_read_the_pipelines_log(tmp_path, monkeypatch):
    path = tmp_path / "timings.json"
    assert book_timings(path, "default") is None
    record_timing(path, "default", "00_shapeworld", 12.34)
    record_timing(path, "default", "01_base_model", 100.0)
    record_timing(path, "smoke", "00_shapeworld", 1.0)
    record_timing(path, "default", "00_shapeworld", 20.0)  # a rerun replaces the chapter's time
    monkeypatch.setenv("COTLAB_TIMINGS_FILE", str(path))
    table = book_timings("", "default")
    chapters = table[~table.index.str.startswith("(")]
    assert chapters["seconds"].to_dict() == {"00_shapeworld": 20.0, "01_base_model": 100.0}
    assert book_timings(path, "paper") is None


def test_presets_cover_every_tier_with_the_same_keys():
    for notebook, by_tier in PRESETS.items():
        assert tuple(by_tier) == TIERS, f"{notebook}: tiers {tuple(by_tier)}"
        keys = {tier: set(params) for tier, params in by_tier.items()}
        assert len({frozenset(k) for k in keys.values()}) == 1, f"{notebook}: tiers disagree on keys {keys}"


def test_shapeworld_presets():
    assert notebook_parameters("00_shapeworld", "smoke") == {"seed": 0, "examples_per_category": 2, "num_scenes": 200}
    assert notebook_parameters("notebooks/00_shapeworld.ipynb", "default") == {
        "seed": 0,
        "examples_per_category": 3,
        "num_scenes": 2000,
    }
    mutated = notebook_parameters("00_shapeworld", "paper")
    mutated["seed"] = 99
    assert notebook_parameters("00_shapeworld", "paper")["seed"] == 0, "presets must not be mutable through results"


def test_unknown_tier_raises_naming_valid_tiers():
    with pytest.raises(ValueError) as info:
        notebook_parameters("00_shapeworld", "bogus")
    message = str(info.value)
    assert "bogus" in message and all(tier in message for tier in TIERS)
    with pytest.raises(ValueError, match="00_shapeworld"):
        notebook_parameters("99_nope", "default")


def test_reproduce_rejects_unknown_tier_before_touching_files(tmp_path):
    with pytest.raises(ValueError, match="smoke, default, full, paper"):
        reproduce("bogus", root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_reproduce_refuses_a_root_that_is_not_a_cotlab_repository_before_creating_anything(tmp_path):
    missing = "is not a cotlab repository: it has no notebooks/, no book/, no _config.yml"
    with pytest.raises(ReproduceError, match=missing):
        reproduce("smoke", root=tmp_path)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book").mkdir()
    with pytest.raises(ReproduceError, match="it has no _config.yml"):
        reproduce("smoke", root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book", "notebooks"]
    with pytest.raises(ReproduceError, match="is not a directory"):
        reproduce("smoke", root=tmp_path / "nowhere")


def test_cli_reproduce_in_an_empty_directory_says_what_is_missing(tmp_path):
    result = _cotlab("reproduce", "--tier", "smoke", "--root", str(tmp_path))
    assert result.returncode != 0
    assert "not a cotlab repository" in result.stderr and "_config.yml" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


def _cotlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cotlab", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_cli_version():
    result = _cotlab("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"cotlab {__version__}"


def test_cli_reproduce_bogus_tier_fails_naming_tiers():
    result = _cotlab("reproduce", "--tier", "bogus")
    assert result.returncode != 0
    assert "bogus" in result.stderr
    assert all(tier in result.stderr for tier in TIERS), result.stderr
    assert result.returncode == 2  # argparse's usage error, raised before anything runs


def test_cli_requires_a_command():
    result = _cotlab()
    assert result.returncode != 0
    assert "reproduce" in _cotlab("--help").stdout


def test_console_script_is_cli_main():
    (script,) = entry_points(group="console_scripts", name="cotlab")
    assert script.value == "cotlab.cli:main"
    assert script.load() is cli.main


@pytest.mark.slow
def test_reproduce_smoke_executes_every_chapter_and_builds_the_book(tmp_path):
    """The real pipeline, end to end: papermill with the smoke presets, then Jupyter Book with warnings as errors."""
    build = tmp_path / "_build"
    index = reproduce("smoke", root=ROOT, build_dir=build)
    assert index == build / "html" / "index.html" and index.is_file()
    for chapter in CHAPTERS:
        assert (build / "html" / "notebooks" / f"{chapter}.html").is_file()
        executed = nbformat.read(build / "book_src" / "notebooks" / f"{chapter}.ipynb", as_version=4)
        injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1, f"{chapter}: papermill injected {len(injected)} parameter cells"
        namespace: dict = {}
        exec(injected[0].source, namespace)  # the injected cell is plain assignments written by papermill
        assert {k: namespace[k] for k in notebook_parameters(chapter, "smoke")} == notebook_parameters(chapter, "smoke")
        code = [c for c in executed.cells if c.cell_type == "code"]
        assert all(c.execution_count is not None for c in code), f"{chapter}: a code cell did not run"
    assert not (build / "failed").exists()
