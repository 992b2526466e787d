"""Notebooks refuse unknown or wrongly typed papermill parameters in the cell right after their parameters cell."""
import json
import types
from pathlib import Path

import nbformat
import pytest

from cotlab.experiments.notebook_params import ParameterError, check_parameters, notebook_names
from cotlab.experiments.tiers import PRESETS, notebook_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SHAPEWORLD = ROOT / "notebooks" / "00_shapeworld.ipynb"
KNOWN = "seed, examples_per_category, num_scenes"


def _kernel_globals(**params) -> dict:
    """What a kernel's globals look like after the parameters cell: IPython's names, a module, private names."""
    return {"In": [], "Out": {}, "get_ipython": print, "exit": None, "quit": None, "open": open, "_": 1, "_i1": "",
            "__name__": "__main__", "np": types.ModuleType("numpy"), "check_parameters": check_parameters,
            **notebook_parameters("00_shapeworld", "default"), **params}


def test_defaults_and_every_tier_preset_pass():
    check_parameters("00_shapeworld", _kernel_globals())
    for notebook, tiers in PRESETS.items():
        for preset in tiers.values():
            check_parameters(notebook, dict(preset))


def test_a_typo_is_refused_naming_it_and_the_known_parameters():
    with pytest.raises(ParameterError, match=f"unknown parameter 'examples_per_categroy' = 1; .*: {KNOWN}$"):
        check_parameters("00_shapeworld", _kernel_globals(examples_per_categroy=1))


@pytest.mark.parametrize("name, value, expected", [
    ("num_scenes", "abc", r"'num_scenes' = 'abc' is a str; expected int"),
    ("seed", True, r"'seed' = True is a bool; expected int"),
    ("num_scenes", 2.5, r"'num_scenes' = 2.5 is a float; expected int"),
])
def test_a_wrong_type_is_refused_naming_parameter_value_and_type(name, value, expected):
    with pytest.raises(ParameterError, match=f"{expected}; .*: {KNOWN}$"):
        check_parameters("00_shapeworld", _kernel_globals(**{name: value}))


def test_floats_take_ints_lists_check_their_items_and_long_values_are_cut():
    params = notebook_parameters("01_base_model", "default")
    check_parameters("01_base_model", {**params, "guidance_scale": 3, "cfg_sweep": [1, 2.5]})
    with pytest.raises(ParameterError, match=r"'cfg_sweep' = \[1, 'x'\] holds 'x', a str; expected a list of float"):
        check_parameters("01_base_model", {**params, "cfg_sweep": [1, "x"]})
    with pytest.raises(ParameterError, match="give lists and dicts with -y"):
        check_parameters("01_base_model", {**params, "eval_seeds": "[0, 1]"})
    with pytest.raises(ParameterError) as err:
        check_parameters("00_shapeworld", _kernel_globals(seed="x" * 10_000))
    assert len(str(err.value)) < 300


def test_names_the_notebook_binds_or_the_caller_ignores_pass():
    assert {"rng", "np", "w", "scenes"} <= notebook_names("00_shapeworld")  # a kernel that ran the chapter already
    check_parameters("00_shapeworld", _kernel_globals(rng=0, scenes=[]))
    check_parameters("00_shapeworld", _kernel_globals(before=1), ignore=["before"])
    with pytest.raises(ParameterError, match="no parameters known for notebook '99_nope'"):
        check_parameters("99_nope", {})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_checks_its_parameters_right_after_the_parameters_cell(path):
    cells = nbformat.read(path, as_version=4).cells
    index = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    check = cells[index + 1]
    assert check.cell_type == "code"
    assert check.source.splitlines()[:2] == [
        "from cotlab.experiments.notebook_params import check_parameters",
        f'check_parameters("{path.stem}", globals())  # refuses unknown or wrongly typed parameters']
    assert not any("=" in line.split("#")[0] for c in cells[:index] if c.cell_type == "code"
                   for line in c.source.splitlines()), f"{path.name}: a cell before the parameters cell binds names"


def _papermill(tmp_path, parameters, notebook=SHAPEWORLD):
    import papermill

    return papermill.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), parameters=parameters,
                                      kernel_name="python3", cwd=str(ROOT), progress_bar=False)


@pytest.mark.parametrize("parameters, message", [
    ({"examples_per_categroy": 1}, "unknown parameter 'examples_per_categroy' = 1"),
    ({"num_scenes": "abc"}, "parameter 'num_scenes' = 'abc' is a str; expected int"),
])
def test_papermill_fails_in_the_check_cell_naming_the_parameter(tmp_path, parameters, message):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError) as err:
        _papermill(tmp_path, parameters)
    assert err.value.ename == "ParameterError"
    assert message in err.value.evalue and KNOWN in err.value.evalue
    executed = json.loads((tmp_path / "out.ipynb").read_text())["cells"]
    failed = next(c for c in executed if c.get("outputs") and c["outputs"][-1].get("output_type") == "error")
    assert "check_parameters(" in "".join(failed["source"])  # the first code cell after the injected one


def test_papermill_with_good_parameters_passes_the_check(tmp_path):
    nb = nbformat.read(SHAPEWORLD, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells = nb.cells[:index + 2]  # up to the check cell: the chapter itself is the reproduce test's
    head = tmp_path / "00_head.ipynb"
    nbformat.write(nb, head)
    _papermill(tmp_path, notebook_parameters("00_shapeworld", "smoke"), notebook=head)
