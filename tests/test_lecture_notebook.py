"""The notebooks run end to end (nbclient), so they never go stale: docs/lecture.ipynb (the lecture's three
questions, a run looked into, the draw widget, ONNX export) and docs/own-model.ipynb (a plain nn.Module through
the whole tool).

Beyond "no error", each result cell (tagged ``display:<Type>``) must have displayed that result richly: HTML from
the shared display (its title naming the result), the pictures inline as PNG where the type has any, or the widget
view for the draw widget; and together the notebooks cover every result type of issue #27."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

DOCS = Path(__file__).resolve().parents[1] / "docs"
WIDGET = "application/vnd.jupyter.widget-view+json"

# result type -> (how its text display starts, whether it draws a picture)
KINDS = {"MatrixResult": ("conv matrix of ", None), "EdgeResult": ("Edge experiment: ", True), "Run": ("Run ", True),
         "LayerTable": (None, False), "TopK": ("Top-", True), "SparsityReport": ("Activation sparsity of ", True),
         "FieldReport": ("Receptive fields (", False), "Visualization": ("Visualization of ", True),
         "Attribution": ("Attribution (", True), "AuditTable": ("Attribution audit: ", True),
         "RefineResult": ("refine ", True), "OnnxExport": ("ONNX export: ", False), "Filters": ("Filters of ", True),
         "DrawWidget": (None, None)}


def execute(name: str, tmp_path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(DOCS / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, [f"{o.ename}: {o.evalue}" for o in errors]
    return nb


def rich_outputs(nb: nbformat.NotebookNode) -> dict[str, list[dict]]:
    """For each ``display:<Type>`` cell, in order: the MIME data of its displayed outputs."""
    out: dict[str, list[dict]] = {}
    for c in nb.cells:
        tags = [t for t in c.metadata.get("tags", []) if t.startswith("display:")]
        if c.cell_type == "code" and tags:
            data = [o["data"] for o in c.outputs if o.output_type in ("execute_result", "display_data")]
            out.setdefault(tags[0].split(":", 1)[1], []).append(data[-1] if data else {})
    return out


def check_displays(nb: nbformat.NotebookNode) -> set[str]:
    shown = rich_outputs(nb)
    for kind, outputs in shown.items():
        start, picture = KINDS[kind]
        for data in outputs:
            if kind == "DrawWidget":
                assert WIDGET in data, f"{kind}: no widget view"
                continue
            html = data.get("text/html", "")
            assert html.startswith('<div class="convscope-result">'), f"{kind}: no rich HTML display"
            assert "<table" in html or "data:image/png" in html, kind
            if start:
                assert data["text/plain"].startswith(start), (kind, data["text/plain"][:80])
            pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
            if picture is not None:
                assert bool(pngs) == picture, f"{kind}: {len(pngs)} inline picture(s)"
            for b64 in pngs:                                 # each inline picture is a real PNG
                img = Image.open(io.BytesIO(base64.b64decode(b64)))
                assert img.format == "PNG" and min(img.size) > 50
    return set(shown)


def stream_text(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    return {name: execute(name, tmp_path_factory.mktemp(name.split(".")[0]))
            for name in ("lecture.ipynb", "own-model.ipynb")}


def test_lecture_notebook_runs_and_answers(executed):
    nb = executed["lecture.ipynb"]
    text = stream_text(nb)
    assert "M @ x.ravel() == conv2d(x).ravel()" in text
    assert "exactly zero before any filter" in text
    assert "maximize: response on the kernels' top-k training images" in text
    refine_table = rich_outputs(nb)["RefineResult"][0]["text/plain"]
    assert "BN statistics frozen" in refine_table and "maximize" in refine_table
    check_displays(nb)


def test_own_model_notebook_walks_a_plain_module(executed):
    nb = executed["own-model.ipynb"]
    acc = float(re.search(r"test accuracy ([\d.]+)%", stream_text(nb)).group(1))
    assert acc > 80                                             # the plain loop trained a real model
    kinds = check_displays(nb)
    assert kinds >= {"LayerTable", "Filters", "MatrixResult", "SparsityReport", "TopK", "Visualization",
                     "Attribution"}
    matrices = rich_outputs(nb)["MatrixResult"]                 # large: a picture; small: named weights
    assert "image/png" in matrices[0] and "<td>w11</td>" in matrices[1]["text/html"]


def test_the_notebooks_cover_every_result_type(executed):
    covered = set().union(*(set(rich_outputs(nb)) for nb in executed.values()))
    assert covered == set(KINDS)
