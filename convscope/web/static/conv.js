// One convolution, worked out (the Draw page's drill-down): the input patch of each input map, the trained
// kernel, the element-wise products, their sum + bias, then the layers that follow pixel by pixel (batch norm,
// ReLU, pooling), every number from the server's /api/run/RID/conv answer. No dependencies.
"use strict";
(function () {
  const el = (...a) => window.convscope.el(...a);
  const SHOWN = 8;      // input channels drawn in full; the others are summarised by their partial sums

  function f4(v) { return (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(4); }
  function grid(values, cls, inside) {
    const t = el("table", { class: "mini " + cls });
    values.forEach((row, i) => {
      const tr = el("tr");
      row.forEach((v, j) => tr.append(el("td", { class: inside && !inside[i][j] ? "pad" : "" }, v.toFixed(3))));
      t.append(tr);
    });
    return t;
  }
  function matrixHref(d, o) {
    const q = new URLSearchParams({ run: o.rid, layer: d.layer, ch: d.channel, y: d.y, x: d.x });
    return `/matrix?${q}#input=${encodeURIComponent(o.input)}`;
  }
  function stepText(s) {
    if (s.window) {
      const vals = s.window.map((w) => w[2].toFixed(4)).join(", ");
      return `${s.name} (${s.kind}): ${s.op} of the window (${vals}) = ${s.output.toFixed(4)} at output pixel ` +
        `(${s.at[0]}, ${s.at[1]})`;
    }
    if (s.mean !== undefined) {
      return `${s.name} (${s.kind}): (${s.input.toFixed(4)} − ${s.mean.toFixed(4)}) / √(${s.var.toFixed(4)} + ` +
        `${s.eps}) · ${s.gamma.toFixed(4)} + ${s.beta.toFixed(4)} = ${s.output.toFixed(4)}`;
    }
    if (s.kind === "ReLU") return `${s.name} (ReLU): max(0, ${s.input.toFixed(4)}) = ${s.output.toFixed(4)}`;
    return `${s.name} (${s.kind}): ${s.input.toFixed(4)} → ${s.output.toFixed(4)}`;
  }

  function render(d, o) {
    const g = d.geometry, out = [];
    const head = el("div", { class: "drillhead" });
    head.append(el("h2", {}, `${d.layer} · channel ${d.channel} · output pixel (${d.y}, ${d.x})`));
    const links = el("p", { class: "links" });
    links.append(el("a", { id: "drill-matrix", href: matrixHref(d, o) }, "the same number as a matrix row × the input"),
                 document.createTextNode(" · "),
                 el("a", { href: `/run/${encodeURIComponent(o.rid)}/unit/${encodeURIComponent(d.layer)}/${d.channel}` },
                    `unit page of ${d.layer}:${d.channel}`), document.createTextNode(" · "));
    const close = el("button", { type: "button", class: "close" }, "close");
    close.addEventListener("click", o.close);
    links.append(close);
    head.append(links);
    const feed = o.feedOf(d.layer);
    head.append(el("p", { class: "hint" },
      `Each input map of ${feed === "input" ? "the model input" : feed} under the ${g.kernel.join("×")} window ` +
      `(stride ${g.stride.join("×")}, padding ${g.padding.join("×")}, dilation ${g.dilation.join("×")}; grey = ` +
      `padding) times the trained kernel, element by element; the products of all ${d.channels.length} input ` +
      `channel${d.channels.length > 1 ? "s" : ""} summed${d.has_bias === false ? "" : ", plus the bias"}. Numbers from ` +
      "your drawing."));
    out.push(head);
    const chans = el("div", { class: "drillgrid" });
    d.channels.slice(0, SHOWN).forEach((ci, k) => {
      const box = el("div", { class: "dch" });
      box.append(el("div", { class: "hint" }, `input channel ${ci}`));
      const row = el("div", { class: "eqrow" });
      row.append(grid(d.patch[k], "patch", d.inside), el("span", { class: "op" }, "×"),
                 grid(d.kernel[k], "kernel"), el("span", { class: "op" }, "="), grid(d.products[k], "prod"));
      box.append(row, el("div", { class: "psum" }, `Σ = ${f4(d.channel_sums[k])}`));
      chans.append(box);
    });
    out.push(chans);
    if (d.channels.length > SHOWN) {
      const rest = d.channel_sums.slice(SHOWN), total = rest.reduce((a, b) => a + b, 0);
      out.push(el("p", { class: "hint" }, `… ${rest.length} more input channels (${d.channels[SHOWN]}–` +
        `${d.channels[d.channels.length - 1]}): their sums ${rest.map(f4).join(" ")} (together ${f4(total)})`));
    }
    const eq = el("p", { class: "eq", id: "drill-eq" });
    eq.append(document.createTextNode(`Σ of all ${d.channels.length * g.kernel[0] * g.kernel[1]} products = ` +
      `${f4(d.sum)}, ${d.has_bias === false ? "no bias (this layer has none)" : `+ bias ${f4(d.bias)}`} = `),
              el("b", { id: "drill-value", "data-value": String(d.value) }, f4(d.value)),
              document.createTextNode(` (PyTorch's ${d.layer} output at this pixel: ${f4(d.torch)})`));
    out.push(eq);
    if (d.after.length) {
      const ol = el("ol", { class: "chain" });
      for (const s of d.after) ol.append(el("li", { "data-layer": s.name, "data-value": String(s.output) }, stepText(s)));
      out.push(el("h3", {}, "then, for this pixel"), ol);
    }
    return out;
  }
  window.convscopeConv = { render };
})();
