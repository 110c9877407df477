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
</section>"""


def unit_body(d: dict[str, Any], file_src: Callable[[str], str], unit_href: Callable[[str, int], str]) -> str:
    """One channel's page; ``file_src`` maps a run-relative file to a URL (or a data: URI in the report)."""
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
        parts.append(f'<section class="card"><h2>Filter</h2><p>{e(f["conv"])}.weight[{e(ch)}], shape '
                     f'{e(" x ".join(map(str, f["shape"])))}{e(shown)}; blue &lt; 0 &lt; red, max |w| = '
                     f'{f["max_abs"]:.3f}</p><div class="tiles">{tiles}</div>{vals}</section>')
    if d.get("sparsity"):
        s = d["sparsity"]
        parts.append(f'<section class="card"><h2>Sparsity</h2><p>On the {e(s["images"])} test images, '
                     f'<b>{100 * s["channel_zero_fraction"]:.1f}%</b> of this channel\'s activations are exactly zero '
                     f'(layer: {100 * s["layer_zero_fraction"]:.1f}%, {e(s["dead_channels"])} dead channels).</p>'
                     "</section>")
    if d.get("topk"):
        field = d.get("receptive_field")
        fdesc = (f'receptive field {field["size"][0]} x {field["size"][1]}, jump {field["jump"][0]}' if field
                 else "whole image")
        figs_p = "".join(f'<figure><img class="patch" src="{r["patch"]}" alt="patch"><figcaption>#{r["index"]} '
                         f'({e(r["label"])}) {r["value"]:.2f}</figcaption></figure>' for r in d["topk"])
        figs_i = "".join(f'<figure><img class="full" src="{r["image"]}" alt="image"><figcaption>at ({r["y"]}, '
                         f'{r["x"]})</figcaption></figure>' for r in d["topk"])
        parts.append(f'<section class="card"><h2>Top {len(d["topk"])} test images</h2><p>Patches under the unit with '
                     f'the highest activation ({e(fdesc)}; grey = padding), best first.</p>'
                     f'<div class="tiles">{figs_p}</div><div class="tiles">{figs_i}</div></section>')
    if d.get("files"):
        imgs = "".join(f'<figure><img class="viz" src="{e(file_src(p))}" alt="{e(p)}"><figcaption>{e(p)}'
                       "</figcaption></figure>" for p in d["files"])
        parts.append(f'<section class="card"><h2>Feature visualization and projections</h2><div class="tiles">{imgs}'
                     "</div></section>")
    else:
        parts.append('<section class="card"><h2>Feature visualization</h2><p>Not computed for this layer yet. '
                     f'Compute it with <code>{e(d["visualize_command"])}</code>; this page shows it when '
                     "RUN/inspect/visualize-*.png is present.</p></section>")
    parts += [f'<p class="note">{e(n)}</p>' for n in d.get("notes", [])]
    return "".join(parts)


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
    curve = f'<img class="plot" src="{e(curve_src)}" alt="training curve">' if curve_src else "<p>no curve.png</p>"
    conf = (f'<img class="plot" src="{e(confusion_src)}" alt="confusion matrix">' if confusion_src
            else f'<p class="note">{e(d.get("confusion_error") or "no confusion matrix")}</p>')
    return (f'<section class="card run" data-run="{e(d["id"])}"><h2>{e(d["id"])}</h2>'
            f'{table(["", ""], summary_rows(d), "summary")}<h3>curves</h3>{curve}<h3>confusion (test split)</h3>'
            f'{conf}<h3>per-class accuracy</h3>{per_class}</section>')


def training_body(cards: list[str], multiple: bool) -> str:
    compare = ('<section class="card"><h2>Test accuracy per epoch</h2><div id="compare" class="compare"></div>'
               '<div id="legend" class="legend"></div></section>')
    return f'<h1>Training</h1>{compare}<div class="{"side" if multiple else "single"}">{"".join(cards)}</div>'
