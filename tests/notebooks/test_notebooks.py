"""The notebooks run headless, top to bottom, on a small portfolio (nbclient + ipykernel).

Each notebook executes in a fresh temporary working folder with its parameters set through
``RG_NB_*`` environment variables; a cell that raises fails the test with the cell's error.
The notebooks are kept in git without outputs (checked here too).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SMALL = {
    "RG_NB_CUSTOMERS": "400",
    "RG_NB_SEED": "7",
    "RG_NB_ROUNDS": "60",
    "RG_NB_GATES": "relaxed",
    "RG_NB_FAMILY": "lgbm",  # the family's cross-validation has tests of its own (training/)
    "MPLBACKEND": "Agg",
}
PRINTED = {
    "03_decision_review": (
        "refused [four_eyes]: 'ann' proposed override",
        "approved by bob (approver)",
        "judgement chain: VerifyResult(ok=True",
    ),
}
"""Lines a notebook must print when it runs: what its walkthrough is there to show."""


def _served_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The service tests' tiny champion bundle (trained once per run)."""
    from tests.conftest import built_once
    from tests.serving.factory import make_bundle

    root = built_once(tmp_path_factory, "serving-bundle", lambda d: make_bundle(d / "champion"))
    return root / "champion"


def test_given_the_notebooks_folder_when_listed_then_the_three_walkthroughs_exist():
    assert [p.name for p in NOTEBOOKS] == [
        "01_portfolio.ipynb",
        "02_train_and_validate.ipynb",
        "03_decision_review.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_given_a_notebook_in_git_when_read_then_it_has_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_given_a_notebook_that_defines_no_logic_when_read_then_no_def_or_class(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            lines = cell.source.splitlines()
            assert not any(line.lstrip().startswith(("def ", "class ")) for line in lines)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_given_a_small_portfolio_when_a_notebook_runs_headless_then_every_cell_succeeds(
    path, tmp_path, tmp_path_factory, monkeypatch
):
    for key, value in {**SMALL, "RG_NB_WORKDIR": str(tmp_path / "work")}.items():
        monkeypatch.setenv(key, value)
    if path.stem == "03_decision_review":  # its subject is the review, not training: a champion
        monkeypatch.setenv("RG_NB_BUNDLE", str(_served_bundle(tmp_path_factory)))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type in ("display_data", "execute_result") for o in outputs)
    printed = "".join(o.text for o in outputs if o.output_type == "stream")
    assert [line for line in PRINTED.get(path.stem, ()) if line not in printed] == []
