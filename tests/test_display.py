"""Rich display of result objects (#27 part 1): each result shows itself in Jupyter (HTML tables, pictures inline as
base64 PNG, no file written) and as short readable text in a terminal, from one mechanism (_result.RichDisplay).

The checks read the numbers back from what is displayed and compare them with the result's own data or an
independent computation (the conv matrix's named entries against the numeric matrix)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from convscope._result import Display, RichDisplay, Table, html_table, text_table
from convscope.data import load

PNG_SRC = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def pictures(html: str) -> list[Image.Image]:
    """The inline PNGs of an HTML display, decoded (a broken one fails here)."""
    out = []
    for b64 in PNG_SRC.findall(html):
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        img.load()
        out.append(img)
    return out


def shown(obj, n_pictures: int | None = None, max_lines: int = 60) -> tuple[str, str]:
    """(text, html) of a result; checks the bundle's shape, that the text is short and has no array dump, and
    that the pictures decode (``n_pictures`` of them when given)."""
    bundle = obj._repr_mimebundle_()
    assert set(bundle) >= {"text/plain", "text/html"}
    text = repr(obj)
    assert bundle["text/plain"] == text == str(obj)
    assert len(text.splitlines()) <= max_lines, text
    assert "array(" not in text and "tensor(" not in text
    imgs = pictures(bundle["text/html"])
    if n_pictures is not None:
        assert len(imgs) == n_pictures
    for img in imgs:
        assert img.format == "PNG" and min(img.size) > 50
    return text, bundle["text/html"]


@pytest.fixture(scope="module")
def test_images():
    return load("digits", "test").subset(np.arange(300))


# ------------------------------------------------------------------------------------------------ the mechanism


class _Thing(RichDisplay):
    def __init__(self, rows):
        self.rows = rows

    def _display(self) -> Display:
        return Display("a <thing>", ["one & two"], [Table(["name", "value"], self.rows, "cap")])


def test_tables_escape_align_and_cut_long_tables():
    t = Table(["name", "value"], [["<b>", "1.5"], ["x", "22"]])
    assert html_table(t) == ('<table class="convscope"><thead><tr><th>name</th><th>value</th></tr></thead><tbody>'
                             "<tr><td>&lt;b&gt;</td><td>1.5</td></tr><tr><td>x</td><td>22</td></tr></tbody></table>")
    assert text_table(t).splitlines() == ["name  value", "<b>     1.5", "x        22"]
    long = Table(["i"], [[str(i)] for i in range(100)])
    assert text_table(long, max_rows=3).splitlines() == ["i", "0", "1", "2", "... 97 more rows"]
    assert html_table(long, max_rows=2).count("<tr>") == 1 + 2 + 1 and "... 98 more rows" in html_table(long, 2)


def test_the_mechanism_gives_text_html_and_no_png_without_pictures():
    thing = _Thing([["a", "1"]])
    text, html = shown(thing, n_pictures=0)
    assert text.splitlines() == ["a <thing>", "  one & two", "cap", "name  value", "a         1"]
    assert "<h4>a &lt;thing&gt;</h4>" in html and "<li>one &amp; two</li>" in html
    assert "image/png" not in thing._repr_mimebundle_()


# -------------------------------------------------------------------------------------------- each result type


def test_run_shows_summary_per_class_table_curves_and_confusion(small_run, tmp_path):
    before = sorted(p.name for p in small_run.path.rglob("*"))
    text, html = shown(small_run, n_pictures=2)
    acc = small_run.summary["test_accuracy"]
    assert f"test accuracy {100 * acc:.2f}%" in text
    for name, v in small_run.summary["per_class_accuracy"].items():   # the per-class table holds the summary's
        assert f"<td>{name}</td><td>{100 * v:.2f}</td>" in html
    assert sorted(p.name for p in small_run.path.rglob("*")) == before   # nothing written into the run
    # the confusion matrix behind the picture is the test-split evaluation: its accuracy is the summary's
    from convscope.training.display import confusion

    assert confusion(small_run).accuracy == pytest.approx(acc, abs=1e-9)


def test_small_conv_matrix_is_a_table_of_named_weights_that_sum_to_the_matrix():
    from convscope.conv import conv_matrix
    from convscope.matrix.report import describe_conv

    w = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    res = describe_conv(w, (1, 4, 5), padding=1, stride=(1, 2))
    text, html = shown(res, n_pictures=0)
    names = res._display().tables[1]
    value = {n: float(v) for n, v in names.rows}                   # weight name -> value shown (4 digits)
    assert len(value) == w.numel()
    m = conv_matrix(w, (1, 4, 5), padding=1, stride=(1, 2)).toarray()
    grid = res._display().tables[0]
    assert len(grid.rows) == m.shape[0] and len(grid.header) == m.shape[1] + 1
    for i, row in enumerate(grid.rows):                            # each entry: the sum of the weights it names
        for j, cell in enumerate(row[1:]):
            shown_value = 0.0 if cell == "0" else sum(value[n] for n in cell.split("+"))
            assert shown_value == pytest.approx(m[i, j], abs=1e-3)
    assert "w1.1:11" in html


def test_large_conv_matrix_is_a_picture():
    from convscope.matrix.report import describe_conv

    res = describe_conv(torch.randn(4, 2, 3, 3), (2, 16, 16), padding=1)
    text, _ = shown(res, n_pictures=1)
    assert res._display().tables == [] and "1,024 x 512" in text
    assert "image/png" in res._repr_mimebundle_()


def test_topk_sparsity_edges_fields(small_run, test_images):
    from convscope.inspect import (
        activation_sparsity,
        edge_experiment,
        receptive_field_report,
        topk,
    )

    recs = topk(small_run, test_images, ["conv1", "conv2"], k=3)
    assert isinstance(recs, dict) and list(recs) == ["conv1", "conv2"]
    text, html = shown(recs, n_pictures=2)                          # one grid per layer
    r = recs["conv2"][5][0]
    assert f"#{r.index} ({r.y},{r.x}) {r.value:.3g}" in html

    sp = activation_sparsity(small_run.model, test_images, small_run.normalization)
    assert isinstance(sp, list)
    text, html = shown(sp, n_pictures=1)
    for row in sp:
        assert f"<td>{row.name}</td>" in html and f"<td>{100 * row.zero_fraction:.2f}</td>" in html

    edges = edge_experiment(test_images.images, "sobel-x")
    text, html = shown(edges, n_pictures=1)
    s = edges.summary()
    assert f"{s['input_zero_mean']:.1f} of 784 values per image exactly zero" in text
    assert f"<td>after ReLU</td><td>{s['after_relu_nonzero']['mean']:.1f}</td>" in html

    fields = receptive_field_report(small_run.model, small_run.input_shape)
    text, html = shown(fields, n_pictures=0)
    conv3 = next(r for r in fields.rows if r.layer == "conv3")
    assert f"<td>conv3</td><td>Conv2d</td><td>{conv3.size[0]}x{conv3.size[1]}</td>" in html


def test_attribution_visualization_and_audit(small_run, test_images):
    from convscope.inspect import audit, audit_table, explain, visualize

    x = small_run.preprocess(test_images.images[:3])
    att = explain(small_run.model, x, "saliency")
    text, html = shown(att, n_pictures=1)
    assert np.array_equal(att.inputs, x.numpy())
    assert f"<td>2</td><td>{att.target[2]}</td>" in html

    vis = visualize(small_run, "conv2", channels=[0, 3], dataset=test_images, steps=4)
    text, html = shown(vis, n_pictures=1)
    assert f"<td>3</td><td>{vis.values[1]:.4g}</td><td>{vis.natural_values[1]:.4g}</td>" in html
    assert "image/png" not in vis._repr_mimebundle_()               # a table and a picture: HTML carries both

    rows = audit(small_run.model, x, methods=["saliency"], steps=4, orders=1)
    assert isinstance(rows, list) and len(rows) == 4                # the method and its three controls
    text, html = shown(rows, n_pictures=1)
    md = audit_table(rows).splitlines()                             # the Markdown table: the same cells
    assert len(md) == 2 + len(rows)
    for line, row in zip(md[2:], rows):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == row.method and cells[-1] == row.verdict
        assert "<tr><td>" + "</td><td>".join(cells) + "</td></tr>" in html.replace("&#x27;", "'")


def test_onnx_export_display():
    from pathlib import Path

    from convscope.training.export import OnnxCheck, OnnxExport

    exp = OnnxExport(Path("m.onnx"), 12345, "pixels", "pixels", ("batch", 1, 28, 28), 18,
                     {"convscope.classes": '["0", "1"]', "long": "x" * 200},
                     OnnxCheck("digits", "test", 2000, 3.1e-6, 2000))
    text, html = shown(exp, n_pictures=0)
    assert "ONNX export: m.onnx" in text and "max |logit difference| 3.1e-06" in text
    assert "same top class for 2,000 of 2,000 (identical predictions)" in text
    assert "x" * 77 + "..." in html and "x" * 78 not in html
    assert exp.to_dict()["check"]["n"] == 2000


def test_layers_and_filters_of_any_module():
    from convscope.errors import ConfigError
    from convscope.inspect import filters, list_layers

    model = torch.nn.Sequential()
    model.add_module("edge", torch.nn.Conv2d(1, 3, 3, padding=1))
    model.add_module("act", torch.nn.ReLU())
    model.add_module("pool", torch.nn.AdaptiveAvgPool2d(1))
    model.add_module("flat", torch.nn.Flatten())
    model.add_module("out", torch.nn.Linear(3, 2))
    layers = list_layers(model, (1, 8, 8))
    text, html = shown(layers, n_pictures=0)
    assert "<tr><td>edge</td><td>Conv2d</td><td>3 x 8 x 8</td><td>30</td></tr>" in html
    assert text.splitlines()[0] == "5 layers, 38 parameters"

    f = filters(model, "edge")
    text, html = shown(f, n_pictures=1)
    w = model.edge.weight.detach().double().numpy()
    for a in range(3):                                              # the norms against the weights themselves
        assert f"<td>{a}</td><td>{np.linalg.norm(w[a]):.4g}</td>" in html
    with pytest.raises(ConfigError, match="not one conv layer.*conv layers: edge"):
        filters(model, "out")
