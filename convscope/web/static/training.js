// Training dashboard: polls /api/live every second and reads each run's metrics.jsonl (and diagnostics.jsonl)
// incrementally from a byte offset; plain SVG charts with hover, smoothing and per-run toggles; for finished runs
// a card with a clickable confusion matrix that lists the test images of a cell, each opening in the Draw page.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
  const POLL_MS = 1000;
  const dash = document.getElementById("dash");
  if (!dash) return;
  const only = dash.dataset.only || null;
  const el = convscope.el;
  const runs = new Map();   // id -> {id, color, status, steps[], epochs[], offset, shown, diag, card}

  function svg(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : +v.toPrecision(4) + "";
  }
  function niceTicks(lo, hi, n) {
    const span = hi - lo || Math.abs(hi) || 1, raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) || 10 * mag;
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(+t.toPrecision(12));
    return out;
  }
  // TensorBoard's smoothing: an exponential moving average, debiased so the start is not pulled to 0
  function smooth(ys, w) {
    let last = 0, n = 0;
    return ys.map((y) => {
      if (y === null || !isFinite(y)) return null;
      n++; last = last * w + (1 - w) * y;
      return w > 0 ? last / (1 - Math.pow(w, n)) : y;
    });
  }

  // one line chart: series [{label, color, xs, ys, faint, dashed}], axis titles, hover read-out
  function chart(box, series, o) {
    const W = 420, H = 230, L = 58, R = 12, T = 10, B = 40;
    const pts = series.flatMap((s) => s.xs.map((x, i) => [x, s.ys[i]])).filter(([, y]) => y !== null && isFinite(y));
    const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": o.ytitle });
    if (!pts.length) {
      s.append(svg("text", { x: W / 2, y: H / 2, class: "tick", "text-anchor": "middle" }, o.empty || "no data yet"));
      box.replaceChildren(s);
      return;
    }
    let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
    let y0 = Math.min(...pts.map((p) => p[1])), y1 = Math.max(...pts.map((p) => p[1]));
    if (o.yfloor !== undefined) y0 = Math.min(y0, o.yfloor);
    if (o.yceil !== undefined) y1 = Math.max(y1, o.yceil);
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y1 += Math.abs(y1) * 0.1 || 1; y0 -= Math.abs(y0) * 0.1 || 0; }
    const X = (x) => L + (W - L - R) * (x - x0) / (x1 - x0), Y = (y) => T + (H - T - B) * (y1 - y) / (y1 - y0);
    for (const t of niceTicks(y0, y1, 5)) {
      s.append(svg("line", { x1: L, x2: W - R, y1: Y(t), y2: Y(t), class: "gridline" }));
      s.append(svg("text", { x: L - 5, y: Y(t) + 4, class: "tick", "text-anchor": "end" }, fmt(t)));
    }
    for (const t of niceTicks(x0, x1, 6).filter((t) => !o.integerX || Number.isInteger(t)))
      s.append(svg("text", { x: X(t), y: H - B + 15, class: "tick", "text-anchor": "middle" }, fmt(t)));
    s.append(svg("text", { x: L + (W - L - R) / 2, y: H - 6, class: "axistitle", "text-anchor": "middle" }, o.xtitle));
    s.append(svg("text", { x: 12, y: T + (H - T - B) / 2, class: "axistitle", "text-anchor": "middle",
                           transform: `rotate(-90 12 ${T + (H - T - B) / 2})` }, o.ytitle));
    for (const se of series) {
      let d = "", pen = false;
      se.xs.forEach((x, i) => {
        const y = se.ys[i];
        if (y === null || !isFinite(y)) { pen = false; return; }
        d += `${pen ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`; pen = true;
      });
      const attrs = { d, fill: "none", stroke: se.color, "stroke-width": se.faint ? 1 : 2, class: "series",
                      "data-run": se.run, "data-points": se.xs.length };
      if (se.faint) attrs["stroke-opacity"] = 0.25;
      if (se.dashed) attrs["stroke-dasharray"] = "5 4";
      s.append(svg("path", attrs));
      if (se.dots) se.xs.forEach((x, i) => { if (se.ys[i] !== null) s.append(svg("circle", { cx: X(x), cy: Y(se.ys[i]), r: 2.5, fill: se.color })); });
    }
    // hover: a vertical rule at the nearest x, each series' value there in the read-out
    const rule = svg("line", { y1: T, y2: H - B, class: "hoverrule", visibility: "hidden" });
    const tip = el("div", { class: "charttip", hidden: "" });
    s.append(rule);
    s.addEventListener("mousemove", (ev) => {
      const r = s.getBoundingClientRect(), px = (ev.clientX - r.left) * W / r.width;
      const xv = x0 + (px - L) * (x1 - x0) / (W - L - R);
      const rows = [];
      let xs = null;
      for (const se of series) {
        if (se.faint && !o.tipFaint) continue;
        let best = -1, bd = Infinity;
        se.xs.forEach((x, i) => { const d = Math.abs(x - xv); if (d < bd && se.ys[i] !== null) { bd = d; best = i; } });
        if (best < 0) continue;
        xs = xs === null ? se.xs[best] : xs;
        rows.push([se.color, `${se.label}: ${fmt(se.ys[best])}` +
                   (se.xs[best] !== xs ? ` (${o.xtitle} ${fmt(se.xs[best])})` : "")]);
      }
      if (xs === null) return;
      rule.setAttribute("x1", X(xs)); rule.setAttribute("x2", X(xs)); rule.setAttribute("visibility", "visible");
      tip.replaceChildren();
      tip.append(el("b", {}, `${o.xtitle} ${fmt(xs)}`));
      for (const [color, text] of rows) {   // text nodes only: layer names come from a file
        const d = el("div"), sw = el("span", { class: "sw" });
        sw.style.background = color;
        d.append(sw, document.createTextNode(text));
        tip.append(d);
      }
      tip.hidden = false;
      tip.style.left = `${Math.min(ev.clientX - r.left + 14, r.width - 180)}px`;
      tip.style.top = `${ev.clientY - r.top + 10}px`;
    });
    s.addEventListener("mouseleave", () => { rule.setAttribute("visibility", "hidden"); tip.hidden = true; });
    const wrap = el("div", { class: "chartwrap" });
    wrap.append(s, tip);
    box.replaceChildren(wrap);
  }

  function render() {
    const w = +document.getElementById("smooth").value;
    document.getElementById("smoothval").textContent = w.toFixed(2);
    const shown = [...runs.values()].filter((r) => r.shown);
    const loss = [], lr = [], acc = [];
    for (const r of shown) {
      const xs = r.steps.map((s) => s.step), ys = r.steps.map((s) => s.loss);
      loss.push({ run: r.id, label: `${r.id} (raw)`, color: r.color, xs, ys, faint: true });
      loss.push({ run: r.id, label: r.id, color: r.color, xs, ys: smooth(ys, w) });
      lr.push({ run: r.id, label: r.id, color: r.color, xs, ys: r.steps.map((s) => s.lr) });
      const ex = r.epochs.map((e) => e.epoch);
      acc.push({ run: r.id, label: `${r.id} test`, color: r.color, xs: ex, dots: true,
                 ys: r.epochs.map((e) => (e.test_accuracy === null ? null : 100 * e.test_accuracy)) });
      acc.push({ run: r.id, label: `${r.id} train`, color: r.color, xs: ex, dashed: true,
                 ys: r.epochs.map((e) => (e.train_accuracy === null ? null : 100 * e.train_accuracy)) });
    }
    chart(document.getElementById("chart-loss"), loss, { xtitle: "step", ytitle: "loss (cross-entropy)",
                                                         empty: "no step logged yet" });
    chart(document.getElementById("chart-lr"), lr, { xtitle: "step", ytitle: "learning rate", yfloor: 0 });
    chart(document.getElementById("chart-acc"), acc, { xtitle: "epoch", ytitle: "accuracy (%)", integerX: true,
                                                       yceil: 100, empty: "no epoch finished yet" });
  }

  function toggle(r) {
    const lab = el("label", { class: "toggle", "data-run": r.id });
    const box = el("input", { type: "checkbox" });
    box.checked = r.shown;
    box.addEventListener("change", () => { r.shown = box.checked; render(); });
    const sw = el("span", { class: "swatch" });
    sw.style.background = r.color;
    r.badge = el("span", { class: "badge" }, r.status);
    lab.append(box, sw, document.createTextNode(` ${r.id} `), r.badge);
    document.getElementById("runtoggles").append(lab);
  }

  async function json(url) {
    const res = await fetch(url);
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || res.statusText);
    return body;
  }

  // ---- a finished run's card: summary, clickable confusion matrix, misclassified images, diagnostics, doctor
  async function card(r) {
    const sec = el("section", { class: "card run", "data-run": r.id });
    sec.append(el("h2", {}, r.id));
    document.getElementById("cards").append(sec);
    let d;
    try { d = await json(`/api/run/${encodeURIComponent(r.id)}/training`); } catch (err) {
      sec.append(el("p", { class: "note" }, String(err.message))); return;
    }
    const s = d.summary || {};
    const t = el("table", { class: "summary" });
    for (const [k, v] of [["model", d.model], ["dataset", d.dataset],
                          ["test accuracy", d.accuracy === null ? "–" : `${(100 * d.accuracy).toFixed(2)}%`],
                          ["epochs", s.epochs ?? "–"], ["training seconds", s.seconds ?? "–"]]) {
      const tr = el("tr"); tr.append(el("th", {}, k), el("td", {}, String(v))); t.append(tr);
    }
    sec.append(t);
    if (d.confusion) {
      sec.append(el("h3", {}, "confusion matrix (test split)"),
                 el("p", { class: "hint" }, "Rows: true class, columns: predicted. Click a cell for its test images; " +
                    "each opens in the Draw page."));
      sec.append(confusion(r.id, d));
      const gal = el("div", { class: "gallery", id: `gallery-${r.id}` });
      sec.append(gal);
    } else if (d.confusion_error) sec.append(el("p", { class: "note" }, d.confusion_error));
    diagnostics(r, sec);
  }

  function confusion(rid, d) {
    const k = d.classes.length, tab = el("table", { class: "confusion" });
    const max = Math.max(1, ...d.confusion.flat().filter((_, i) => Math.floor(i / k) !== i % k));
    const head = el("tr"); head.append(el("th", {}, "true \\ pred"));
    d.classes.forEach((c) => head.append(el("th", {}, c)));
    tab.append(head);
    d.confusion.forEach((row, i) => {
      const tr = el("tr"); tr.append(el("th", {}, d.classes[i]));
      row.forEach((n, j) => {
        const td = el("td", { class: i === j ? "diag" : "off", "data-true": i, "data-pred": j }, String(n));
        if (i !== j && n) td.style.background = `rgba(217, 72, 15, ${0.12 + 0.75 * n / max})`;
        // every cell is a keyboard-reachable button (Tab, then Enter or Space); a 0 cell says "no images"
        td.classList.add("clickable");
        td.setAttribute("tabindex", "0");
        td.setAttribute("role", "button");
        td.title = `${n} test image${n === 1 ? "" : "s"} of ${d.classes[i]} predicted as ${d.classes[j]}`;
        td.setAttribute("aria-label", td.title);
        td.addEventListener("click", () => cell(rid, i, j));
        td.addEventListener("keydown", (ev) => {
          if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); cell(rid, i, j); }
        });
        tr.append(td);
      });
      tab.append(tr);
    });
    return tab;
  }

  async function cell(rid, i, j) {
    const gal = document.getElementById(`gallery-${rid}`);
    gal.replaceChildren(el("p", { class: "status" }, "loading…"));
    let m;
    try { m = await json(`/api/run/${encodeURIComponent(rid)}/misclassified?true=${i}&pred=${j}`); } catch (err) {
      gal.replaceChildren(el("p", { class: "note" }, err.message)); return;
    }
    const n = m.count === 0 ? "no test images" : `${m.count} test image${m.count === 1 ? "" : "s"}`;
    const what = i === j ? `${n} of ${m.true_name} predicted correctly`
                         : `${n} of ${m.true_name} predicted as ${m.pred_name}`;
    gal.replaceChildren(el("h3", {}, what + (m.shown < m.count ? ` (first ${m.shown} shown)` : "")));
    const tiles = el("div", { class: "tiles" });
    for (const im of m.images) {
      const a = el("a", { href: `/run/${encodeURIComponent(rid)}/draw?test_index=${im.index}`, class: "testimg",
                          title: `test image #${im.index}: open it in the Draw page` });
      const fig = el("figure");
      fig.append(el("img", { src: im.picture, alt: `test image ${im.index}` }), el("figcaption", {}, `#${im.index}`));
      a.append(fig); tiles.append(a);
    }
    gal.append(tiles);
  }

  // ---- diagnostics.jsonl (--diagnose): per-layer statistics over steps, and doctor's findings
  async function diagnostics(r, sec) {
    const box = el("div", { class: "diagnostics" });
    sec.append(box);
    r.diagBox = box;
    await pollDiagnostics(r);
  }

  async function pollDiagnostics(r) {
    if (!r.diagBox || !r.hasDiagnostics) return;
    const c = await json(`/api/live/${encodeURIComponent(r.id)}/diagnostics?offset=${r.diag.offset}`);
    if (c.reset) { r.diag = { offset: 0, header: null, diags: [] }; return; }
    r.diag.offset = c.offset;
    r.diag.header = r.diag.header || c.header;
    r.diag.diags.push(...c.diags);
    const box = r.diagBox, dg = r.diag.diags;
    box.replaceChildren(el("h3", {}, "diagnostics (--diagnose)"),
      el("p", { class: "hint" }, `diagnostics.jsonl: per-layer summary statistics of the training batch every ` +
         `${(r.diag.header || {}).every ?? "N"} steps (${dg.length} observed steps; it records statistics, not ` +
         "histograms). Left: fraction of exactly-zero activations per activation layer; right: each weight's " +
         "update/weight ratio per step (about 1e-3 is healthy)."));
    const layers = (key) => [...new Set(dg.flatMap((x) => Object.keys(x[key] || {})))];
    const row = el("div", { class: "charts" });
    const a = el("div", { class: "chartbox" }), p = el("div", { class: "chartbox" });
    row.append(a, p); box.append(row);
    const xs = dg.map((x) => x.step);
    chart(a, layers("activations").map((name, i) => ({ label: name, color: COLORS[i % COLORS.length], xs, dots: true,
      ys: dg.map((x) => ((x.activations[name] || {}).zero_fraction ?? null)) })),
      { xtitle: "step", ytitle: "zero fraction", yfloor: 0, yceil: 1 });
    chart(p, layers("params").map((name, i) => ({ label: name, color: COLORS[i % COLORS.length], xs, dots: true,
      ys: dg.map((x) => { const v = (x.params[name] || {}).update_ratio; return v > 0 ? Math.log10(v) : null; }) })),
      { xtitle: "step", ytitle: "log10 update/weight" });
    if (r.status !== "training") {
      const doc = await json(`/api/live/${encodeURIComponent(r.id)}/doctor`);
      const ul = el("ul", { class: "findings" });
      for (const f of doc.findings || []) ul.append(el("li", { class: f.severity }, `${f.severity}: ${f.message}`));
      box.append(el("h3", {}, "convscope doctor"),
                 doc.error ? el("p", { class: "note" }, doc.error)
                   : (doc.findings.length ? ul : el("p", {}, "No findings: nothing in the diagnostics looks wrong.")));
    }
  }

  // ---- polling
  let busy = false;
  async function poll() {
    if (busy) return;
    busy = true;
    try {
      const list = (await json("/api/live")).runs.filter((x) => !only || x.id === only);
      let changed = false;
      for (const info of list) {
        let r = runs.get(info.id);
        if (!r) {
          r = { id: info.id, color: COLORS[runs.size % COLORS.length], status: info.status, steps: [], epochs: [],
                offset: 0, shown: true, diag: { offset: 0, header: null, diags: [] } };
          runs.set(info.id, r);
          toggle(r);
          changed = true;
        }
        r.hasDiagnostics = info.diagnostics;
        if (info.metrics_bytes !== r.offset) {
          const c = await json(`/api/live/${encodeURIComponent(r.id)}/metrics?offset=${r.offset}`);
          if (c.reset) { r.steps = []; r.epochs = []; r.offset = 0; } else {
            r.steps.push(...c.steps); r.epochs.push(...c.epochs); r.offset = c.offset;
          }
          changed = true;
        }
        if (r.status !== info.status) { r.status = info.status; r.badge.textContent = info.status; changed = true; }
        r.badge.className = `badge ${info.status}`;
        if (r.status === "finished" && !r.card) { r.card = true; card(r); }
        else if (r.status === "training" && r.diagBox) await pollDiagnostics(r);
      }
      if (changed) render();
      const training = list.filter((x) => x.status === "training").length;
      document.getElementById("livestatus").textContent =
        `${list.length} run(s), ${training} training · updated ${new Date().toLocaleTimeString()}`;
      dash.dataset.polls = +(dash.dataset.polls || 0) + 1;
    } catch (err) {
      document.getElementById("livestatus").textContent = `update failed: ${err.message} (retrying)`;
    } finally {
      busy = false;
    }
  }
  document.getElementById("smooth").addEventListener("input", render);
  poll();
  setInterval(poll, POLL_MS);
})();
