// The matrix explorer's trained mode (/matrix?run=RUN&layer=conv2&ch=..&y=..&x=..#input=BASE64): one row of
// a trained conv layer's matrix (the row of output channel ch, pixel (y, x)) times the unrolled input of that
// layer for the drawing passed in the address, giving the same value as the Draw page's drill-down. The
// row comes from the server (convscope.conv.conv_matrix); this script only draws it.
"use strict";
(function () {
  const el = (...a) => window.convscope.el(...a);
  const MAX_ROWS = 80;             // entries listed in the table; the sum is over all of them

  function b64zeros(n) { return btoa(String.fromCharCode(...new Uint8Array(n))); }
  function f4(v) { return (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(4); }

  function paintRow(d, k) {        // input channel k of the row, H x W, coloured by weight (grey: zero)
    const [h, w] = d.matrix.input_hw, cv = el("canvas", { width: w, height: h, class: "rowmap" });
    const g = cv.getContext("2d"), img = g.createImageData(w, h), px = img.data, map = window.convscope.DIVERGING;
    const m = Math.max(1e-12, ...d.matrix.weights.map(Math.abs));
    for (let p = 0; p < h * w; p++) { px[p * 4] = px[p * 4 + 1] = px[p * 4 + 2] = 225; px[p * 4 + 3] = 255; }
    d.matrix.columns.forEach((c, i) => {
      const ch = Math.floor(c / (h * w)), p = c % (h * w);
      if (ch !== k) return;
      const q = Math.round(127.5 + 127.5 * d.matrix.weights[i] / m) * 3;
      px[p * 4] = map[q]; px[p * 4 + 1] = map[q + 1]; px[p * 4 + 2] = map[q + 2];
    });
    g.putImageData(img, 0, 0);
    return cv;
  }

  function render(d, run) {
    const M = d.matrix, g = d.geometry, [h, w] = M.input_hw, [co, ho, wo] = g.output;
    document.getElementById("t-title").textContent =
      `${d.layer} of run ${run} as a matrix: row ${M.row} of ${M.shape[0].toLocaleString()} × ${M.shape[1].toLocaleString()}`;
    document.getElementById("t-info").textContent =
      `One row per output value (${co} maps × ${ho}×${wo}), one column per input value (${g.input[0]} maps × ` +
      `${h}×${w}); ${M.nnz.toLocaleString()} non-zeros (density ${(M.nnz / M.shape[0] / M.shape[1]).toExponential(2)}). ` +
      `Row ${M.row} = ${co > 1 ? `${d.channel} · ${ho * wo} + ` : ""}${d.y} · ${wo} + ${d.x} is output channel ` +
      `${d.channel}, pixel (${d.y}, ${d.x}); its ${M.nnz_row} non-zeros are the trained kernel's weights, placed at ` +
      `the columns of the input pixels under the window. Below: the row cut into the ${d.channels.length} input ` +
      `map${d.channels.length > 1 ? "s" : ""} it reads (coloured by weight, blue < 0 < red; grey = 0).`;
    const rows = document.getElementById("t-rows");
    rows.replaceChildren();
    d.channels.slice(0, 32).forEach((ci, k) => {
      const f = el("figure");
      f.append(paintRow(d, k), el("figcaption", {}, `in ${ci}`));
      rows.append(f);
    });
    if (d.channels.length > 32) rows.append(el("span", { class: "hint" }, `… ${d.channels.length - 32} more input maps`));
    const eq = document.getElementById("t-eq");
    eq.replaceChildren(document.createTextNode(`row · unrolled input = Σ over the ${M.nnz_row} non-zeros of ` +
      `weight × input = ${f4(M.dot)}; ${d.has_bias === false ? "no bias" : `+ bias ${f4(d.bias)}`} = `),
      el("b", { id: "t-value", "data-value": String(M.value) }, f4(M.value)),
      document.createTextNode(` — the drill-down's window sum gives ${f4(d.value)}, PyTorch's ${d.layer} output ` +
        `${f4(d.torch)}`));
    const table = el("table", { class: "mtable rowtable" });
    const head = el("tr");
    for (const t of ["column", "input pixel (map, y, x)", "weight", "input", "weight × input"]) head.append(el("th", {}, t));
    table.append(head);
    M.columns.slice(0, MAX_ROWS).forEach((c, i) => {
      const local = c, ch = d.channels[Math.floor(local / (h * w))], p = local % (h * w);
      const tr = el("tr", { "data-col": M.column_offset + c });
      for (const t of [String(M.column_offset + c), `(${ch}, ${Math.floor(p / w)}, ${p % w})`, M.weights[i].toFixed(4),
                       M.inputs[i].toFixed(4), (M.weights[i] * M.inputs[i]).toFixed(4)]) tr.append(el("td", {}, t));
      table.append(tr);
    });
    const wrap = document.getElementById("t-table");
    wrap.replaceChildren(table);
    if (M.columns.length > MAX_ROWS) wrap.append(el("p", { class: "hint" }, `… ${M.columns.length - MAX_ROWS} more non-zeros (in the sum above)`));
  }

  function fail(message) {
    document.getElementById("t-title").textContent = "A trained layer as a matrix";   // no stale row number
    for (const id of ["t-rows", "t-table", "t-eq"]) document.getElementById(id).replaceChildren();
    const info = document.getElementById("t-info");
    info.textContent = message; info.classList.add("error");
    document.body.dataset.trained = "invalid";
  }

  // the symbolic explorer below follows the layer's geometry (on a 6 x 6 crop of its input: a readable matrix)
  function follow(form, d) {
    const g = d.geometry, set = (k, v) => { const n = form.querySelector(`[name="${k}"]`); n.value = Math.min(+n.max, Math.max(+n.min, v)); };
    set("h", Math.min(6, g.input[1])); set("w", Math.min(6, g.input[2])); set("kh", g.kernel[0]); set("kw", g.kernel[1]);
    set("stride", g.stride[0]); set("padding", g.padding[0]); set("dilation", g.dilation[0]);
  }

  async function show(form, fields, input) {
    const run = fields.get("run");
    // integers as numbers; anything else as typed, so the server's message can quote it ("abc", not null)
    const num = (k) => { const v = (fields.get(k) ?? "").trim(); return /^-?\d+$/.test(v) ? +v : v; };
    const body = JSON.stringify({ layer: fields.get("layer"), ch: num("ch"), y: num("y"), x: num("x"), input });
    let res, d;
    try {
      res = await fetch(`/api/run/${encodeURIComponent(run)}/conv`,
                        { method: "POST", headers: { "Content-Type": "application/json" }, body });
      d = await res.json();
    } catch (e) { return fail("server unreachable: " + e); }
    if (!res.ok) return fail(d.error || `error ${res.status}`);
    document.getElementById("t-info").classList.remove("error");
    render(d, run);
    follow(form, d);
    document.body.dataset.trained = `${d.layer}/${d.channel}/${d.y}/${d.x}`;
  }

  async function start(form) {
    const params = new URLSearchParams(location.search);
    if (!params.get("run") || !params.get("layer")) return null;
    document.getElementById("trained").hidden = false;
    const tform = document.getElementById("tform");
    for (const k of ["run", "layer", "ch", "y", "x"]) tform.querySelector(`[name="${k}"]`).value = params.get(k) || "0";
    const hash = new URLSearchParams(location.hash.slice(1));
    let input = hash.get("input");
    if (!input) {          // no drawing passed: the blank input, said so
      const res = await fetch(`/api/run/${encodeURIComponent(params.get("run"))}/network`);
      const net = await res.json();
      if (!res.ok) { fail(net.error || `error ${res.status}`); return; }
      input = b64zeros(net.input_shape.reduce((a, b) => a * b, 1));
      document.getElementById("t-title").after(el("p", { class: "note" },
        "No drawing passed: this is the blank input. Open this view from a pixel of the Draw page's drill-down " +
        "to see your digit."));
    }
    await show(form, params, input);
    tform.addEventListener("input", () => {
      const f = new URLSearchParams(new FormData(tform));
      history.replaceState(null, "", `/matrix?${f}${location.hash}`);
      show(form, f, input);
    });
    tform.addEventListener("submit", (ev) => ev.preventDefault());
  }
  window.convscopeTrained = { start };
})();
