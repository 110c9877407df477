"""docs/lecture.ipynb runs end to end (nbclient), so the lecture walkthrough never goes stale."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "lecture.ipynb"


def test_lecture_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "M @ x.ravel() == conv2d(x).ravel()" in outputs
    assert "exactly zero before any filter" in outputs
    assert "BN statistics frozen" in outputs and "maximize" in outputs
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
