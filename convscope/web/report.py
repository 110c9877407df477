"""``convscope report RUN``: one self-contained HTML file — every image inline as a ``data:`` URI, the style
sheet inline, no script, and a Content-Security-Policy that forbids any network access when it is opened.

Same content as the server's static pages: summary, curves, confusion, per-class accuracy, layer table,
sparsity, the edge experiment, the first layer's conv matrix, and a page per unit of one layer.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text, writable_folder, write_error
from .._check import fail, integer, replaceable
from .._check import path as check_path
from .._progress import stage, track
from ..conv import conv_matrix, make_geometry
from ..data.safe_io import read_regular
from ..errors import ConfigError, ConvscopeError, DataError, WriteError
from ..inspect import activation_sparsity, edge_experiment, list_layers, receptive_fields
from ..inspect.edges import FILTERS, edges_png
from ..inspect.sparsity import sparsity_png
from ..matrix.display import block_structure, heatmap_png
from ..models.conv_layers import conv_layers
from ..models.layers import resolve_layers
from . import compute, pictures
from .runs import RunEntry
from .testset import evaluation
from .security import WebError, safe_child
from .views import pages
from .views.layout import e, page, table

REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = Path(__file__).parent / "static" / "app.css"
MAX_PICTURE_BYTES = 64 << 20   # a run's PNG is well under a megabyte; more is not one of its pictures


def _run_file(run_path: Path, rel: str) -> Path | None:
    """``run_path / rel`` if it is a regular file inside the run reached through no symlink, else None: the
    report embeds what it reads, so nothing outside the run folder (a link to ~/.ssh/...) may get in."""
    try:
        return safe_child(run_path, rel)
    except WebError:
        return None


def _run_file_uri(run_path: Path, rel: str) -> str:
    """A ``data:`` URI of a file checked by :func:`_run_file`, read as a regular file of bounded size."""
    path = _run_file(run_path, rel)
    if path is None:
        raise ConfigError(f"{run_path / rel}: not a regular file inside the run (a symlink, a FIFO or missing); "
                          "the report embeds only the run's own files")
    return pictures.data_uri(read_regular(path, MAX_PICTURE_BYTES, "picture"))


def _not_a_run_file(out: Path, run_path: Path) -> None:
    """Inside the run folder the report writes only an .html file: ``out`` at the weights, model.json or any other
    file of the run would destroy it (checked before anything is written, symlinks followed)."""
    target, root = out.resolve(), run_path.resolve()
    if target.is_dir():
        target = target / "report.html"
    own = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() not in (".html", ".htm")] \
        if root.is_dir() else []
    inside = target.is_relative_to(root)
    clash = next((p for p in own if p == target or (target.exists() and p.samefile(target))), None)
    if clash is not None or (inside and target.suffix.lower() not in (".html", ".htm")):
        what = f"the run's own {clash.name}" if clash is not None else "inside the run folder and not an .html file"
        raise fail("out", f"{out} is {what}; writing the report there would destroy the run's files; give an "
                          f".html file, e.g. {run_path / 'report.html'}")


REPORT_MARK = "<title>report · ".encode()   # what page(f"report · {name}") writes in every report's first bytes


def _check_out(out: Path) -> Path:
    """The HTML file to write: ``out``, or ``out/report.html`` when ``out`` is a folder; its folder is created and
    probed for writing now, before minutes of work, so that an unwritable -o fails at once and clearly."""
    if out.is_dir():
        out = out / "report.html"
    writable_folder(out.parent, f"-o {out}", "-o report.html")
    if out.exists() and not out.is_file():
        raise ConfigError(f"-o {out}: exists and is not a regular file; give another file name")
    # an existing file is replaced only when it is an earlier report (`report RUN -o notes.txt` replaced the notes)
    other = out.with_name("report.html" if out.name != "report.html" else "report-convscope.html")
    return replaceable(out, "out", REPORT_MARK, "a convscope report (an HTML file titled 'report · ...')",
                       f"give -o a new file name such as {other}")


@contextlib.contextmanager
def _as_report_write(out: Path) -> Iterator[None]:
    """A picture of the report that cannot be written is the report that cannot be written: named as ``out``."""
    try:
        yield
    except WriteError as err:
        raise write_error(out, err.__cause__ if isinstance(err.__cause__, OSError) else err) from err


def _unit_layer(entry: RunEntry, layer: str | None, default: str | None) -> str | None:
    """The layer whose units get pages: ``--layer`` resolved as every inspection command does (so a 0.1-style
    numeric name gets the renaming hint), and it must be one feature-map layer."""
    shown = {li["name"]: li for li in compute.shown_layers(entry)}
    if layer is None:
        name = default if default is not None else next(iter(shown), None)
        if name is not None and name not in shown:
            raise ConfigError(f"the first convolution {name!r} is not a feature-map layer; give --layer, one of "
                              f"{', '.join(shown)}")
        return name
    if not layer.strip():
        raise ConfigError(f"--layer {layer!r}: empty; give a layer name (see `convscope layers RUN`), e.g. "
                          f"{next(iter(shown), 'conv1')}")
    names = resolve_layers(entry.run.model, layer)
    if len(names) != 1:
        raise ConfigError(f"--layer {layer!r}: names {len(names)} layers ({', '.join(names)}); the report pages the "
                          "units of one layer: give one name")
    if names[0] not in shown:
        raise ConfigError(f"--layer {layer!r}: not a feature-map layer; choose one of {', '.join(shown)}")
    return names[0]


def _img(uri: str, alt: str, cls: str = "plot") -> str:
    return f'<img class="{cls}" src="{uri}" alt="{e(alt)}">'


OPEN = ("training", "network")   # sections shown open; the others are collapsed under their title


def _section(anchor: str, title: str, body: str) -> str:
    """A collapsible section (<details>: no script needed to open it)."""
    return (f'<details class="page card" id="{e(anchor)}"{" open" if anchor in OPEN else ""}><summary><h2>'
            f'{e(title)}</h2></summary>{body}</details>')


def _network_input(entry: RunEntry, image: Path | None, test_index: int | None, ds) -> tuple[Any, str] | None:
    """The network picture's input, uint8 (C, H, W), and the sentence that says which it is: ``image`` prepared
    as ``convscope predict`` prepares it (the one image path), else test image ``test_index`` (default 0); None
    without the test split and without ``image``."""
    run = entry.run
    if image is not None:
        from ..data.prepare import default_mode, prepare_image

        mode = default_mode(run.meta)
        prep = prepare_image(image, run.input_shape, mode=mode)          # refuses a blank picture, as predict does
        notes = "; ".join([f"prepared: {mode}", *prep.notes])
        return prep.tensor, f"Your image <code>{e(image)}</code> ({e(notes)})"
    if ds is None or not len(ds):
        return None
    k = 0 if test_index is None else integer(test_index, "test_index", 0, len(ds) - 1,
                                             fix=f"the {ds.name} test split has images 0..{len(ds) - 1}")
    return ds.images[k], f"Test image #{k} (a {e(ds.classes[int(ds.labels[k])])})"


def build_report(run_path: str | Path, out: str | Path | None = None, layer: str | None = None,
                 edge_filter: str = "sobel-x", max_units: int = 64, image: str | Path | None = None,
                 test_index: int | None = None) -> Path:
    """Write the report of the run at ``run_path`` to ``out`` (default RUN/report.html); returns its path.
    ``layer``: whose channels get a unit page each (default: the first convolution), at most ``max_units``.
    The network picture shows ``image`` (a PNG/JPEG file, prepared as ``predict`` prepares it) or test image
    ``test_index`` (default 0); the report says which."""
    run_path = check_path(run_path, "run_path")
    out = check_path(out, "out", "report.html") if out is not None else None
    if image is not None and test_index is not None:
        raise ConfigError("--image and --test-index: give one (the network picture shows one input)")
    image = check_path(image, "image") if image is not None else None
    if edge_filter not in FILTERS:
        raise ConfigError(f"--filter {edge_filter!r}: unknown; choose one of {', '.join(FILTERS)}")
    entry = RunEntry(run_path.name, run_path.resolve())
    run = entry.run
    out = out if out is not None else run_path / "report.html"
    _not_a_run_file(out, run_path)
    out = _check_out(out)
    model, shape = run.model, run.input_shape
    first = next(iter(conv_layers(model).items()), None)                  # (name, nn.Conv2d) or None
    unit_layer = _unit_layer(entry, layer, first[0] if first else None)
    try:
        ds = compute.test_dataset(run)
    except ConvscopeError as err:
        ds, no_data = None, err
        if test_index is not None:
            raise ConfigError(f"--test-index {test_index}: {err}; give --image PATH instead") from None
    if ds is not None:   # a diverged run: every picture of the report would be drawn from NaN scores
        evaluation(entry).result.refuse_non_finite(str(run_path))
    shown_input = _network_input(entry, image, test_index, ds)     # a bad image is said now, before the work
    sections: list[tuple[str, str, str]] = []
    # the pictures are drawn beside the report (a hidden folder, removed whatever happens): a full disk at -o
    # then fails here, named as the report's, not as a temporary file somewhere in /tmp
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp_name, _as_report_write(out):
        tmp = Path(tmp_name)

        def png(draw, name: str) -> str:
            return pictures.file_data_uri(draw(tmp / name))

        # summary, curves, confusion, per-class accuracy
        stage(f"report: summary, curves and confusion of {run_path}")
        tdata = compute.training_data(entry).to_dict()
        try:   # no curve (missing, a link, a FIFO): the report without it
            curve = _run_file_uri(entry.path, "curve.png") if _run_file(entry.path, "curve.png") else None
        except DataError:
            curve = None
        conf = None
        if tdata["confusion"] is not None:
            from ..training.report import confusion_png

            conf = png(lambda p: confusion_png(evaluation(entry).result, run.classes, p), "confusion.png")
        sections.append(("training", "Summary, curves and confusion", pages.training_card(tdata, curve, conf)))

        # the network view as one picture, for the chosen image (default: test image 0)
        if shown_input is not None:
            from .network_picture import network_png

            stage("report: the network on one image")
            picture, what = network_png(entry, shown_input[0])
            body = (f"<p>{shown_input[1]} through every layer, as the "
                    f"served Draw page shows it: each column is a layer's feature maps (viridis from 0 to the "
                    f"layer's maximum; blue-white-red around 0 where a layer has negative values), then the "
                    f"class probabilities (predicted: {e(what['prediction'])}).</p>"
                    + '<div class="networkbox">' + _img(pictures.data_uri(picture), "network view", "plot network")
                    + "</div>")
            sections.append(("network", "The network on one test image", body))

        # layer table with receptive fields
        try:
            fields = receptive_fields(model, shape)
        except ConfigError:
            fields = {}
        rows = []
        for li in list_layers(model, shape):
            f = fields.get(li.name)
            rf = "–" if f is None else ("whole input" if f.is_global else f"{f.size[0]}x{f.size[1]} / jump {f.jump[0]}")
            rows.append([li.name, li.kind, " x ".join(map(str, li.output_shape)), f"{li.parameters:,}", rf])
        sections.append(("layers", "Layers", table(["layer", "type", "output", "parameters", "receptive field"],
                                                   rows, "layers")))

        # sparsity and the edge experiment need the test split
        if ds is None:
            sections.append(("data", "Test data", f'<p class="note">{e(no_data)}</p>'))
        if ds is not None:
            stage(f"report: sparsity on {len(ds):,} test images")
            sp = activation_sparsity(model, ds, run.normalization)
            srows = [[s.name, f"{100 * s.zero_fraction:.1f}%", f"{s.dead_units}/{s.units}",
                      f"{s.dead_channels}/{s.shape[0]}"] for s in sp]
            body = (f"<p>Exactly-zero activations on the {len(ds):,} test images.</p>"
                    + table(["layer", "exactly zero", "dead units", "dead channels"], srows)
                    + _img(png(lambda p: sparsity_png(sp, p), "sparsity.png"), "sparsity"))
            sections.append(("sparsity", "Sparsity", body))
            if ds.images.shape[1] == 1:
                stage("report: the edge experiment")
                res = edge_experiment(ds.images, edge_filter)
                s = res.summary()
                body = (f"<p>A hand-set {e(edge_filter)} filter (zero padding) then ReLU on all {s['images']:,} test "
                        f"images: {s['input_nonzero']['mean']:.1f} non-zero input pixels of {s['pixels_per_image']} "
                        f"on average, {s['filtered_nonzero']['mean']:.1f} after the filter, "
                        f"{s['after_relu_nonzero']['mean']:.1f} after ReLU (ReLU zeroes "
                        f"{100 * s['relu_zeroed_fraction_of_nonzero']:.1f}% of the filter's non-zero responses).</p>"
                        + _img(png(lambda p: edges_png(ds.images, res, p), "edges.png"), "edge experiment"))
                sections.append(("edges", "Edge experiment", body))

        # the first layer as a matrix (its first output channel on the real input size)
        if first is not None:
            name, conv = first
            stage(f"report: {name} as a matrix")
            c = conv.in_channels
            w0 = conv.weight.detach()[:1].double()                          # (1, C/groups, kh, kw)
            kw = {"stride": conv.stride, "padding": conv.padding, "dilation": conv.dilation}
            m = conv_matrix(w0, (c // conv.groups, *shape[1:]), **kw)
            geom = make_geometry(tuple(conv.weight.shape), shape, groups=conv.groups, **kw)
            rows_all, cols_all = geom.shape
            zr, zc = min(m.shape[0], 2 * shape[2]), min(m.shape[1], 4 * shape[2])   # two output rows, four input rows
            body = (f"<p><code>{e(name)}</code> on a {shape[1]} x {shape[2]} input is a {rows_all:,} x {cols_all:,} "
                    f"sparse matrix ({e(block_structure(geom))}). Shown: output channel 0, a {m.shape[0]:,} x "
                    f"{m.shape[1]:,} matrix with {m.nnz:,} non-zeros (density {m.nnz / (m.shape[0] * m.shape[1]):.4f}"
                    f"); each band is one kernel row.</p>"
                    + _img(png(lambda p: heatmap_png(m, p, f"{name}, output channel 0"), "matrix.png"), "conv matrix")
                    + f"<p>Zoom: the first {zr} rows (output pixels) and {zc} columns (input pixels), every entry a "
                    "kernel weight (blue &lt; 0 &lt; red).</p>"
                    + _img(png(lambda p: heatmap_png(m[:zr, :zc], p, f"{name}, rows 0-{zr - 1}, columns 0-{zc - 1}"),
                               "matrix-zoom.png"), "conv matrix zoom"))
            sections.append(("matrix", "The first layer as a matrix", body))

        # a page per unit
        shown = {li["name"]: li for li in compute.shown_layers(entry)}
        if unit_layer is not None:
            n = min(shown[unit_layer]["shape"][0], max_units)
            units, files = [], []
            for ch in track(range(n), f"report: unit pages of {unit_layer}", unit="unit"):
                d = compute.unit_data(entry, unit_layer, ch).to_dict()
                files = [rel for rel in d["files"] if _run_file(entry.path, rel)]   # the run's own files only
                body = pages.unit_body(d, lambda rel: _run_file_uri(entry.path, rel), lambda lay, k: f"#unit-{k}")
                zero = d["sparsity"]["channel_zero_fraction"] if d.get("sparsity") else None
                label = f"channel {ch}" + (f" · {100 * zero:.0f}% zero" if zero is not None else "") + (
                    f" · top image: {d['topk'][0]['label']}" if d.get("topk") else "")
                units.append(f'<details class="page card unit" id="unit-{ch}"><summary>{e(label)}</summary>{body}'
                             "</details>")
            links = " ".join(f'<a href="#unit-{ch}">{ch}</a>' for ch in range(n))
            # the layer's own pictures from `convscope visualize` / `project`, once for the layer (when computed)
            strips = "".join(f'<figure>{_img(_run_file_uri(entry.path, rel), rel, "plot")}<figcaption>{e(rel)}'
                             "</figcaption></figure>" for rel in files)
            more = (f"<p>{n} of {shown[unit_layer]['shape'][0]} channels.</p>" if n < shown[unit_layer]["shape"][0]
                    else "")
            sections.append(("units", f"Units of {unit_layer}", f'{more}<p class="toc">{links}</p>{strips}'
                             + "".join(units)))

    toc = '<p class="toc">' + "".join(f'<a href="#{a}">{e(t)}</a>' for a, t, _ in sections) + "</p>"
    acc = run.summary.get("test_accuracy")
    head = (f"<h1>Report: {e(run_path.name)}</h1><p>{e(run.meta.get('model'))} on {e(run.config.data.dataset)}"
            + (f", test accuracy {100 * acc:.2f}%" if isinstance(acc, (int, float)) else "")
            + f"; made by convscope {e(run.meta.get('convscope_version', ''))}.</p>{toc}")
    html = page(f"report · {run_path.name}", head + "".join(_section(a, t, b) for a, t, b in sections),
                css=STYLE.read_text(), csp=REPORT_CSP)
    atomic_write_text(out, html)
    return out


__all__ = ["build_report"]
