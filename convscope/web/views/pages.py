"""Page bodies: runs index, draw, unit, matrix explorer and training. Interactive parts are filled in by the
static scripts (draw.js, matrix.js, training.js) from the JSON API; data reaches them via data-* attributes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .layout import e, table


def nav_for(rid: str | None) -> list[tuple[str, str]]:
    items = [("Runs", "/")]
    if rid:
        items += [("Draw", f"/run/{rid}/draw"), ("Training", f"/run/{rid}/training")]
    return items + [("Matrix", "/matrix"), ("All runs", "/training")]


def index_body(runs: list[dict[str, Any]]) -> str:
    rows = "".join(
        f'<tr><td><a href="/run/{e(r["id"])}/draw">{e(r["id"])}</a></td><td>{e(r["model"])}</td>'
        f'<td>{e(r["dataset"])}</td><td>{e(r["accuracy"])}</td><td class="path">{e(r["path"])}</td>'
        f'<td><a href="/run/{e(r["id"])}/draw">draw</a> · <a href="/run/{e(r["id"])}/training">training</a></td></tr>'
        for r in runs)
    return ('<h1>Runs</h1><table class="runs"><thead><tr><th>run</th><th>model</th><th>dataset</th>'
            f'<th>test accuracy</th><th>directory</th><th></th></tr></thead><tbody>{rows}</tbody></table>'
            '<p>Also: <a href="/matrix">convolution as a matrix</a> · '
            '<a href="/training">all runs side by side</a></p>')


def draw_body(rid: str, input_shape: list[int]) -> str:
    """The network view: canvas and model input on the left, a column per layer (filled by draw.js from
    /api/run/RID/network and each predict answer), logits and softmax last; a drill-down panel below."""
    return f"""
<section id="draw" class="netview" data-run="{e(rid)}" data-input="{e(",".join(map(str, input_shape)))}"
         data-state="empty">
  <div class="netleft">
    <canvas id="pad" width="280" height="280" aria-label="drawing canvas"></canvas>
    <div class="controls">
      <button id="clear" type="button">Clear</button>
      <label>brush <input id="brush" type="range" min="8" max="40" value="22"></label>
    </div>
    <label class="upload">or upload <input id="upload" type="file" accept="image/*"></label>
    <div id="predbox" class="predbox">
      <canvas id="inputview" class="inputview" width="140" height="140" data-layer="input" data-ch="0"
              title="the model input: the drawing as the model reads it"></canvas>
      <div>
        <div class="predline">Prediction <span id="prediction" class="pred"></span></div>
        <p id="empty" class="emptymsg">Draw a digit</p>
      </div>
    </div>
    <p id="status" class="status"></p>
    <div class="toggles">
      <label><input id="show-bn" type="checkbox"> batch norm</label>
      <label>colour scale <select id="scale"><option value="layer">per layer</option>
        <option value="global">one for all layers</option></select></label>
    </div>
    <p class="hint">Light strokes on black. Hover a map: lines to the maps (and kernels) it reads. Click a conv
      map: that pixel's convolution with its numbers.</p>
    <p id="net-notes" class="note"></p>
  </div>
  <div id="netscroll" class="netscroll"><div id="layers" class="netcols"></div></div>
  <svg id="links" class="links" aria-hidden="true"></svg>
</section>
<div id="hoverinfo" class="hoverinfo" hidden></div>
<section id="drill" class="card drill" hidden></section>
<section id="attr" class="card">
  <h2>Attribution <label class="hint"><input id="attr-on" type="checkbox"> compute for the current drawing</label>
    <span id="attr-status" class="status"></span></h2>
  <p class="hint">Which input pixels four methods credit for the predicted class, over the model input (red: for it,
    blue: against it); each labelled with the trust audit's verdict for this model.</p>
  <div id="attr-maps" class="tiles"></div>
  <p id="attr-note" class="note"></p>
  <div id="audit" class="auditbox" data-state="">
    <p class="hint">The verdicts come from the trust audit in the run folder (<code>convscope explain RUN --audit</code>
      writes it): model randomization and deletion/insertion for every method, against controls. Or compute it
      here, in the background: it takes minutes, the page may be closed meanwhile.</p>
    <label>test images <input id="audit-images" type="number" min="1" value="500"></label>
    <button id="audit-run" type="button" disabled>Run the trust audit</button>
    <progress id="audit-progress" max="1" value="0" hidden></progress>
    <span id="audit-status" class="status"></span>
  </div>
</section>"""


def unit_body(d: dict[str, Any], file_src: Callable[[str], str], unit_href: Callable[[str, int], str],
              live: bool = False, computed: frozenset[str] = frozenset()) -> str:
    """One channel's page; ``file_src`` maps a run-relative file to a URL (or a data: URI in the report).
    ``live``: the served page, with buttons that compute this unit's feature visualization and projections
    (those in ``computed``, "visualize" and "project", the server already holds: the page shows them at once);
    the static report shows only what was computed."""
    parts = [(f'<h1 class="unit-title">{e(d["layer"])} · channel {e(d["channel"])} '
             f'<span class="hint">({e(d["kind"])}, output {e(" x ".join(map(str, d["shape"])))})</span></h1>')]
    ch, n = d["channel"], d["channels"]
    parts.append('<p class="unitnav">' + (f'<a href="{e(unit_href(d["layer"], ch - 1))}">← channel {ch - 1}</a> '
                                        if ch > 0 else "")
                 + (f'<a href="{e(unit_href(d["layer"], ch + 1))}">channel {ch + 1} →</a>' if ch + 1 < n else "")
                 + "</p>")
    f = d.get("filter")
    if f:
        vals = ""
        if f.get("values"):
            vals = table([""] + [str(j + 1) for j in range(len(f["values"][0]))],
                         [[str(i + 1)] + [f"{v:+.3f}" for v in row] for i, row in enumerate(f["values"])], "weights")
        tiles = "".join(f'<figure><img class="tile" src="{t}" alt="kernel"><figcaption>in {i}</figcaption></figure>'
                        for i, t in enumerate(f["tiles"]))
        shown = "" if f["shape"][0] <= 16 else f" (first 16 of {f['shape'][0]} input channels)"
        parts.append(f'<section class="card"><h2>Filter</h2><p>The weights this channel\'s convolution '
                     f'<code>{e(f["conv"])}</code> slides over each input channel: <code>{e(f["conv"])}.weight[{e(ch)}]'
                     f'</code>, shape {e(" x ".join(map(str, f["shape"])))}{e(shown)}; blue &lt; 0 &lt; red, '
                     f'max |w| = {f["max_abs"]:.3f}.</p><div class="tiles">{tiles}</div>{vals}</section>')
    if d.get("sparsity"):
        s = d["sparsity"]
        parts.append(f'<section class="card"><h2>Sparsity</h2><p>How often this channel is off: on the '
                     f'{e(s["images"])} test images, <b>{100 * s["channel_zero_fraction"]:.1f}%</b> of its activations '
                     f'are exactly zero (layer: {100 * s["layer_zero_fraction"]:.1f}%, {e(s["dead_channels"])} dead '
                     "channels).</p></section>")
    if d.get("topk"):
        field = d.get("receptive_field")
        fdesc = (f'receptive field {field["size"][0]} x {field["size"][1]}, jump {field["jump"][0]}' if field
                 else "whole image")
        figs_p = "".join(f'<figure><img class="patch" src="{r["patch"]}" alt="patch"><figcaption>#{r["index"]} '
                         f'({e(r["label"])}) {r["value"]:.2f}</figcaption></figure>' for r in d["topk"])
        figs_i = "".join(f'<figure><img class="full" src="{r["image"]}" alt="image"><figcaption>at ({r["y"]}, '
                         f'{r["x"]})</figcaption></figure>' for r in d["topk"])
        parts.append(f'<section class="card"><h2>Top {len(d["topk"])} test images</h2><p>The test images that make '
                     f'this unit fire most: the patch under the unit at its strongest position ({e(fdesc)}; grey = '
                     'padding), best first, then the whole image with the patch boxed.</p>'
                     f'<div class="tiles">{figs_p}</div><div class="tiles">{figs_i}</div></section>')
    if live:
        api = f'/api/run/{e(d["run"])}/unit/{e(d["layer"])}/{e(ch)}'
        cached = {k: ' data-cached="1"' if k in computed else "" for k in ("visualize", "project")}
        parts.append(f'<section class="card ondemand" data-url="{api}/visualize" data-kind="visualize"'
                     f'{cached["visualize"]}>'
                     '<h2>Feature visualization</h2><p>An input optimized, starting from noise, to make this unit '
                     'as large as possible (its maximum over the map; 256 steps, Fourier parametrization, random '
                     'jitter), beside the test image that activates it most by the same measure.</p>'
                     '<button type="button" class="compute">Compute this unit\'s visualization</button>'
                     '<span class="status"></span><div class="result tiles"></div></section>')
        parts.append(f'<section class="card ondemand" data-url="{api}/project" data-kind="project"'
                     f'{cached["project"]}>'
                     '<h2>Projections</h2><p>Each of this unit\'s top 4 test activations traced back to pixels: the '
                     'image patch under the unit, its deconvnet projection and its guided-backprop image (grey = 0, '
                     'each scaled to its own largest magnitude; Zeiler and Fergus, figure 2).</p>'
                     '<button type="button" class="compute">Compute this unit\'s projections</button>'
                     '<span class="status"></span><div class="result"></div></section>')
        if d.get("files"):
            links = " · ".join(f'<a href="{e(file_src(p))}">{e(p)}</a>' for p in d["files"])
            parts.append(f'<p class="hint">The whole layer, as the CLI drew it: {links}</p>')
    parts += [f'<p class="note">{e(n)}</p>' for n in d.get("notes", [])]
    return "".join(parts)


def unit_pending_body(rid: str, layer: str, ch: int, status: dict[str, Any]) -> str:
    """The unit page while the run's unit data is still being computed: progress, then the page (unit.js)."""
    return (f'<h1 class="unit-title">{e(layer)} · channel {e(ch)}</h1>'
            f'<section class="card pending" id="pending" data-status="/api/run/{e(rid)}/units">'
            '<h2>Preparing the unit pages of this run</h2><p>The top test images and sparsity of every layer are '
            'computed once, in the background, when the server starts (or the run finishes, if later); this page opens '
            'by itself when they are '
            f'ready.</p><progress></progress> <span id="pending-step" class="status">{e(status.get("step", ""))}'
            '</span></section>')


def matrix_body() -> str:
    def num(name: str, label: str, value: int, lo: int, hi: int) -> str:
        return (f'<label>{e(label)} <input id="m-{name}" name="{name}" type="number" min="{lo}" max="{hi}" '
                f'value="{value}"></label>')
    controls = "".join([num("h", "input H", 4, 1, 12), num("w", "W", 4, 1, 12), num("kh", "kernel H", 3, 1, 7),
                        num("kw", "W", 3, 1, 7), num("stride", "stride", 1, 1, 4), num("padding", "padding", 0, 0, 4),
                        num("dilation", "dilation", 1, 1, 3)])
    return f"""
<section id="trained" class="card trained" hidden>
  <h2 id="t-title">A trained layer as a matrix</h2>
  <form id="tform" class="controls"><label>run <input id="t-run" name="run" size="12"></label>
    <label>layer <input id="t-layer" name="layer" size="8"></label>
    <label>output channel <input id="t-ch" name="ch" type="number" min="0" value="0"></label>
    <label>y <input id="t-y" name="y" type="number" min="0" value="0"></label>
    <label>x <input id="t-x" name="x" type="number" min="0" value="0"></label></form>
  <p id="t-info" class="status"></p>
  <div id="t-rows" class="tiles"></div>
  <p id="t-eq" class="eq"></p>
  <div id="t-table" class="matrix"></div>
</section>
<h1>Convolution as a matrix</h1>
<p>A 2-D convolution of one channel is a sparse matrix acting on the unrolled input: output pixel (y, x) is
row y·W<sub>out</sub> + x, input pixel (i, j) is column i·W + j. Hover an output pixel or a matrix cell.</p>
<form id="mform" class="controls">{controls}</form>
<p id="m-info" class="status"></p>
<div class="matrixrow">
  <div><h3>input</h3><div id="m-input" class="grid"></div></div>
  <div><h3>kernel</h3><div id="m-kernel" class="grid"></div></div>
  <div><h3>output</h3><div id="m-output" class="grid"></div></div>
</div>
<p id="m-hover" class="status">&nbsp;</p>
<h3>matrix <span id="m-shape" class="hint"></span></h3>
<div id="m-matrix" class="matrix"></div>
<p id="m-structure" class="hint"></p>"""


def summary_rows(d: dict[str, Any]) -> list[list[object]]:
    s = d.get("summary", {})
    acc = s.get("test_accuracy")
    return [["model", d.get("model")], ["dataset", d.get("dataset")],
            ["test accuracy", f"{100 * acc:.2f}%" if isinstance(acc, (int, float)) else "–"],
            ["epochs", s.get("epochs", "–")], ["training seconds", s.get("seconds", "–")],
            ["train images", s.get("train_images", "–")]]


def training_card(d: dict[str, Any], curve_src: str | None, confusion_src: str | None) -> str:
    per_class = ""
    if d.get("per_class") is not None:
        per_class = table(["class", "accuracy"], [[c, f"{100 * a:.2f}%"] for c, a in zip(d["classes"], d["per_class"])],
                          "perclass")
    # only what exists: no heading over a missing curve or confusion matrix (the reason, if any, said once)
    curve = f'<h3>curves</h3><img class="plot" src="{e(curve_src)}" alt="training curve">' if curve_src else ""
    conf = (f'<h3>confusion (test split)</h3><img class="plot" src="{e(confusion_src)}" alt="confusion matrix">'
            if confusion_src else
            (f'<p class="note">{e(d["confusion_error"])}</p>' if d.get("confusion_error") else ""))
    return (f'<section class="card run" data-run="{e(d["id"])}"><h2>{e(d["id"])}</h2>'
            f'{table(["", ""], summary_rows(d), "summary")}{curve}{conf}'
            f'{"<h3>per-class accuracy</h3>" + per_class if per_class else ""}</section>')


def training_body(only: str | None) -> str:
    """The live dashboard (filled by training.js): every run under the served folders, or only run ``only``."""
    return f"""
<h1>Training{f' <span class="hint">· {e(only)}</span>' if only else ''}</h1>
<section id="dash" class="card" data-only="{e(only or '')}">
  <div class="controls">
    <span id="runtoggles" class="toggles" aria-label="runs shown"></span>
    <label>smoothing <input id="smooth" type="range" min="0" max="0.99" step="0.01" value="0.6">
      <span id="smoothval">0.60</span></label>
    <span id="livestatus" class="status"></span>
  </div>
  <p class="hint">Per-step training loss (faint: each logged batch; solid: smoothed with an exponential moving
  average, as TensorBoard does), the learning rate of each step, and accuracy after each epoch (solid: test split,
  dashed: training batches). Runs that start training while this page is open appear here and grow without a
  reload. Hover a chart for values.</p>
  <div class="charts">
    <div class="chartbox"><h3>training loss</h3><div id="chart-loss"></div></div>
    <div class="chartbox"><h3>learning rate</h3><div id="chart-lr"></div></div>
    <div class="chartbox"><h3>accuracy</h3><div id="chart-acc"></div></div>
  </div>
</section>
<div id="cards" class="{'single' if only else 'side'}"></div>"""


ERROR_TITLES = {400: "That request cannot be answered", 404: "Not found", 405: "Method not allowed",
                422: "Invalid address", 500: "Internal error"}


def error_body(status: int, message: str, path: str, rid: str | None) -> str:
    """An error as a page: what went wrong (the same message the API gives) and where to go from here."""
    back = [("the list of runs", "/")]
    if rid:
        back = [(f"{rid}: draw", f"/run/{rid}/draw"), (f"{rid}: training", f"/run/{rid}/training"), *back]
    links = "".join(f'<li><a href="{e(href)}">{e(label)}</a></li>' for label, href in back)
    return (f'<section class="card error" data-status="{status}"><h1>{e(ERROR_TITLES.get(status, "Error"))} '
            f'<span class="hint">({status})</span></h1><p class="message">{e(message)}</p>'
            f'<p class="hint">Address: <code>{e(path)}</code></p><h2>Go to</h2><ul>{links}</ul></section>')
