"""Every tutorial notebook runs top to bottom in the smoke profile, as papermill runs it for readers."""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat
import papermill
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))

pytestmark = pytest.mark.notebook


def test_python3_kernel_runs_in_this_environment(tmp_path: Path) -> None:
    """The ``python3`` kernel that papermill and the book start is this interpreter's environment (the venv)."""
    probe = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)")])
    out = papermill.execute_notebook(probe, str(tmp_path / "probe.ipynb"), kernel_name="python3", progress_bar=False)
    assert out.cells[0].outputs[0]["text"].strip() == sys.prefix


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_in_smoke_profile(script: Path, phantom_root: Path, tmp_path: Path) -> None:
    papermill.execute_notebook(
        jupytext.read(script),
        str(tmp_path / f"{script.stem}.ipynb"),
        parameters={"profile": "smoke", "data_root": str(phantom_root)},
        kernel_name="python3",
        cwd=str(script.parent),
        progress_bar=False,
    )
