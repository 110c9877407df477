// Training page: every run's test accuracy per epoch on one SVG chart (runs side by side below it).
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
  function svg(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  async function load() {
    const res = await fetch("/api/training");
    const data = await res.json();
    const box = document.getElementById("compare"), legend = document.getElementById("legend");
    if (!box) return;
    const runs = data.runs.filter((r) => r.epochs.length);
    const W = 640, H = 260, L = 48, B = 30, T = 10, R = 10;
    const maxE = Math.max(1, ...runs.map((r) => r.epochs[r.epochs.length - 1].epoch));
    const accs = runs.flatMap((r) => r.epochs.map((e) => 100 * e.test_accuracy));
    const lo = Math.max(0, Math.floor((Math.min(100, ...accs) - 1) / 10) * 10), hi = 100;
    const x = (e) => L + (W - L - R) * (e - (maxE > 1 ? 1 : 0)) / Math.max(1, maxE - 1);
    const y = (a) => T + (H - T - B) * (hi - a) / Math.max(1, hi - lo);
    const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
    const step = hi - lo > 30 ? 10 : 5;
    for (let a = lo; a <= hi; a += step) {
      s.append(svg("line", { x1: L, x2: W - R, y1: y(a), y2: y(a), class: "gridline" }));
      s.append(svg("text", { x: L - 6, y: y(a) + 4, class: "tick", "text-anchor": "end" }, `${a}%`));
    }
    for (let e = 1; e <= maxE; e++) s.append(svg("text", { x: x(e), y: H - 10, class: "tick", "text-anchor": "middle" },
                                                 String(e)));
    runs.forEach((r, i) => {
      const pts = r.epochs.map((e) => `${x(e.epoch)},${y(100 * e.test_accuracy)}`).join(" ");
      const col = COLORS[i % COLORS.length];
      s.append(svg("polyline", { points: pts, fill: "none", stroke: col, "stroke-width": 2 }));
      for (const e of r.epochs) s.append(svg("circle", { cx: x(e.epoch), cy: y(100 * e.test_accuracy), r: 3, fill: col }));
      const item = convscope.el("span", { class: "item" });
      const sw = convscope.el("span", { class: "swatch" });
      sw.style.background = col;
      item.append(sw, document.createTextNode(
        ` ${r.id}: ${(100 * r.epochs[r.epochs.length - 1].test_accuracy).toFixed(2)}%`));
      legend.append(item);
    });
    box.replaceChildren(s);
  }
  load();
})();
