// Draw page = the network view. A canvas (mouse, touch, pen through Pointer Events) or an uploaded image is
// POSTed; the answer's maps fill one column per layer (batch norm behind a toggle), then the logits and the
// softmax. Hovering a map draws lines back to the maps that feed it (and shows a conv's kernels); clicking a
// conv map works out that output pixel's convolution with its numbers (conv.js). Plain SVG and canvas.
// One drawing request in flight, the latest drawing wins; an uploaded image replaces every drawing sent or queued
// before it (their late answers are dropped), so a slow server cannot paint an old stroke's answer over it.
"use strict";
(function () {
  const cs = window.convscope, el = cs.el;
  const root = document.getElementById("draw");
  const rid = root.dataset.run;
  const pad = document.getElementById("pad"), ctx = pad.getContext("2d");
  const brush = document.getElementById("brush"), status = document.getElementById("status");
  const cols = document.getElementById("layers"), scroller = document.getElementById("netscroll");
  const svg = document.getElementById("links"), info = document.getElementById("hoverinfo");
  const showBn = document.getElementById("show-bn"), scaleSel = document.getElementById("scale");
  const drillBox = document.getElementById("drill");
  const GAP = 2, SVGNS = "http://www.w3.org/2000/svg";
  let drawing = false, last = null, inFlight = 0, pending = null;
  let generation = 0;   // bumped by an upload: answers and queued drawings of an older generation are dropped
  let net = null, byName = {}, data = null, input64 = null;
  let kept = null;    // an error that the next answer must not overwrite (a bad ?test_index=), until the user acts

  const { clear, pos, stroke } = cs.pen(pad, brush);
  clear();

  pad.addEventListener("pointerdown", (ev) => {
    ev.preventDefault(); drawing = true; kept = null; last = pos(ev); stroke(last, last);
    try { pad.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic pointers */ }
    schedule();
  });
  pad.addEventListener("pointermove", (ev) => {
    if (!drawing) return;
    const p = pos(ev); stroke(last, p); last = p; schedule();
  });
  const end = () => { if (drawing) { drawing = false; schedule(); } };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
  document.getElementById("clear").addEventListener("click", () => { kept = null; clear(); closeDrill(); schedule(); });
  document.getElementById("upload").addEventListener("change", (ev) => {
    const f = ev.target.files[0];
    kept = null;
    if (f) sendReplacing(f, f.type || "application/octet-stream");
  });

  // the drawing and the open drill-down survive leaving the page (Back from the matrix explorer restores them):
  // the pad as a PNG data URL in this tab's sessionStorage, per run
  const SAVED = `convscope:draw:${rid}`;
  function save() {
    try { sessionStorage.setItem(SAVED, JSON.stringify({ pad: pad.toDataURL("image/png"), drill: drill.at })); }
    catch (e) { /* storage full or disabled: nothing kept, the page still works */ }
  }
  function restore() {
    let s = null;
    try { s = JSON.parse(sessionStorage.getItem(SAVED) || "null"); } catch (e) { s = null; }
    if (!s || typeof s.pad !== "string" || !s.pad.startsWith("data:image/png;base64,")) { schedule(); return; }
    const img = new Image();
    img.onload = () => {
      ctx.drawImage(img, 0, 0, pad.width, pad.height);
      if (Array.isArray(s.drill) && s.drill.length === 4) drill.at = s.drill;   // reopened by the first answer
      schedule();
    };
    img.onerror = () => schedule();
    img.src = s.pad;
  }

  function schedule() {
    save();
    const g = generation;
    pad.toBlob((blob) => {
      if (g !== generation) return;           // an upload came after this drawing
      if (inFlight) pending = blob; else send(blob, "image/png");
    }, "image/png");
  }
  function sendReplacing(blob, type) {
    generation += 1;
    pending = null;
    return send(blob, type);
  }
  async function send(blob, type) {
    const g = generation;
    inFlight += 1;
    root.dataset.busy = "1";
    const t0 = performance.now();
    try {
      if (!net) await loadNetwork();
      const res = await fetch(`/api/run/${encodeURIComponent(rid)}/predict?norm=1`,
                              { method: "POST", headers: { "Content-Type": type }, body: blob });
      const d = await res.json();
      if (g !== generation) return;            // replaced by a later upload while in flight (finally still runs)
      if (!res.ok) { status.textContent = d.error || `error ${res.status}`; }
      else {
        render(d);
        status.textContent = d.no_ink ? "no ink found: draw or upload a digit"
                                      : `updated in ${Math.round(performance.now() - t0)} ms`;
      }
      if (kept) status.textContent = kept;
    } catch (e) {
      if (g === generation) status.textContent = "server unreachable: " + e;
    } finally {
      inFlight -= 1;
      if (inFlight === 0) {
        if (pending) { const b = pending; pending = null; send(b, "image/png"); } else root.dataset.busy = "0";
      }
    }
  }

  async function loadNetwork() {
    const res = await fetch(`/api/run/${encodeURIComponent(rid)}/network`);
    const d = await res.json();
    if (!res.ok) throw new Error(d.error || `error ${res.status}`);
    net = d;
    byName = Object.fromEntries(d.layers.map((L) => [L.name, L]));
    document.getElementById("net-notes").textContent = d.notes.join(" ");
  }

  // ---- building the columns (once the first answer names the classes)
  function build(d) {
    cols.replaceChildren();
    for (const L of net.layers) {
      const [C, H, W] = L.shape, conv = L.kind === "Conv2d";
      const col = el("div", { class: "col" + (L.norm ? " norm" : ""), "data-col": L.name });
      const head = el("div", { class: "colhead", title: `${L.name}: ${L.kind}, ${C} x ${H} x ${W}` });
      head.append(el("b", {}, L.name), el("span", {}, L.kind), el("span", {}, `${C}×${H}×${W}`));
      const box = el("div", { class: "layer maps", "data-layer": L.name });
      for (let c = 0; c < C; c++) {
        const cv = el("canvas", { width: W, height: H, class: "map" + (conv ? " conv" : ""), "data-ch": c,
                                  title: conv ? `${L.name} channel ${c}: click a pixel for its convolution`
                                              : `${L.name} channel ${c}` });
        if (conv) { cv.setAttribute("tabindex", "0"); cv.setAttribute("role", "button");
                    cv.setAttribute("aria-label", `${L.name} channel ${c}: Enter works out its centre pixel`); }
        if (!conv && !L.norm) {     // a unit page exists for every shown layer but batch norm
          const a = el("a", { href: `/run/${encodeURIComponent(rid)}/unit/${encodeURIComponent(L.name)}/${c}`,
                              "aria-label": `${L.name} channel ${c}: unit page` });
          a.append(cv); box.append(a);
        } else box.append(cv);
      }
      const legend = el("div", { class: "legend" });
      legend.append(el("canvas", { width: 64, height: 1, class: "bar" }), el("span", { class: "lo" }),
                    el("span", { class: "hi" }));
      col.append(head, box, legend, el("p", { class: "more" }, ""));
      cols.append(col);
    }
    const flat = el("div", { class: "col headcol", "data-col": "logits" });
    const hname = net.head.map((h) => h.name).join(" → ") || "head";
    const fh = el("div", { class: "colhead", title: `the model's output for this input, before the softmax: ${hname}` });
    fh.append(el("b", {}, "logits"), el("span", {}, hname), el("span", {}, `${d.classes.length} values`));
    const logits = el("div", { id: "logits", class: "logits" });
    d.classes.forEach((c) => {
      const row = el("div", { class: "logit", "data-class": c });
      row.append(el("span", { class: "label" }, c), el("span", { class: "track" }), el("span", { class: "val" }, "–"));
      row.querySelector(".track").append(el("span", { class: "bar" }));
      logits.append(row);
    });
    flat.append(fh, logits);
    const soft = el("div", { class: "col headcol soft", "data-col": "softmax" });
    const sh = el("div", { class: "colhead" });
    sh.append(el("b", {}, "softmax"), el("span", {}, "probabilities"), el("span", {}, "sum to 1"));
    const probs = el("div", { id: "probs", class: "probs" });
    d.classes.forEach((c) => {
      const row = el("div", { class: "prob", "data-class": c });
      row.append(el("span", { class: "label" }, c), el("span", { class: "bar" }), el("span", { class: "val" }, "–"));
      probs.append(row);
    });
    soft.append(sh, probs);
    cols.append(flat, soft);
    applyBn();
  }

  // ---- sizing: every visible column shares the width; tiles as large as fit the screen's height
  function fit(C, H, W, colW, maxH) {
    let best = null;
    for (let per = 1; per <= C; per++) {
      const s = Math.min(Math.floor((colW - (per - 1) * GAP) / per), 72);
      if (s < 8) break;
      const th = Math.max(4, Math.round(s * H / W)), rows = Math.ceil(C / per);
      if (rows * (th + GAP) - GAP <= maxH && (!best || s > best.s)) best = { s, th, per, overflow: false };
    }
    if (best) return best;
    const s = 10, per = Math.max(1, Math.floor((colW + GAP) / (s + GAP)));
    return { s, th: Math.max(4, Math.round(s * H / W)), per, overflow: true };
  }
  function layout() {
    if (!net || !cols.firstChild) return;
    const shown = net.layers.filter((L) => showBn.checked || !L.norm);
    const top = cols.getBoundingClientRect().top + window.scrollY;
    const phone = window.innerWidth < 700;
    const avail = phone ? 360 : Math.max(300, window.innerHeight - top - 12);
    const fixed = [...cols.querySelectorAll(".headcol")].reduce((a, n) => a + n.offsetWidth + 8, 0);
    const colW = Math.max(52, Math.min(160, Math.floor((scroller.clientWidth - fixed) / shown.length) - 10));
    const maxH = avail - 76;                                    // column head + legend
    for (const L of shown) {
      const [C, H, W] = L.shape, f = fit(C, H, W, colW, maxH);
      const col = cols.querySelector(`.col[data-col="${CSS.escape(L.name)}"]`);
      const box = col.querySelector(".maps");
      col.style.width = `${colW}px`;
      box.style.gridTemplateColumns = `repeat(${f.per}, ${f.s}px)`;
      box.style.maxHeight = f.overflow ? `${maxH}px` : "";
      box.classList.toggle("overflow", f.overflow);
      for (const cv of box.querySelectorAll("canvas")) { cv.style.width = `${f.s}px`; cv.style.height = `${f.th}px`; }
      const fits = Math.floor(maxH / (f.th + GAP)) * f.per;
      col.querySelector(".more").textContent = f.overflow ? `${Math.min(fits, C)} of ${C} maps in view: scroll the column` : "";
    }
    const wide = scroller.scrollWidth > scroller.clientWidth + 2;
    root.dataset.scrolls = wide ? "1" : "0";
    status.dataset.wide = wide ? "more layers to the right: scroll sideways" : "";
  }
  function applyBn() {
    for (const col of cols.querySelectorAll(".col.norm")) col.hidden = !showBn.checked;
    layout(); if (data) paintAll();
  }
  showBn.addEventListener("change", applyBn);
  scaleSel.addEventListener("change", () => { if (data) paintAll(); });
  window.addEventListener("resize", () => { layout(); clearLinks(); });

  // ---- painting with the chosen scale
  function layerValues(L) {        // back from the answer's uint8 to values: (q, value-of-q function)
    const m = L.signed ? Math.max(-L.lo, L.hi) || 1 : (L.hi || 1);
    return L.signed ? (q) => (q - 127.5) / 127.5 * m : (q) => q / 255 * m;
  }
  function paintAll() {
    const visible = data.layers.filter((L) => showBn.checked || !L.norm);
    const global = scaleSel.value === "global";
    const G = Math.max(1e-12, ...visible.map((L) => Math.max(Math.abs(L.lo), Math.abs(L.hi))));
    for (const L of data.layers) {
      const [C, H, W] = L.shape;
      let q = cs.b64bytes(L.data);
      const m = L.signed ? Math.max(-L.lo, L.hi) || 1 : (L.hi || 1);
      if (global) {
        const val = layerValues(L), out = new Uint8Array(q.length);
        for (let i = 0; i < q.length; i++) {
          const v = val(q[i]);
          out[i] = L.signed ? Math.round(127.5 + 127.5 * v / G) : Math.round(Math.max(0, 255 * v / G));
        }
        q = out;
      }
      const map = L.signed ? cs.DIVERGING : cs.VIRIDIS;
      const col = cols.querySelector(`.col[data-col="${CSS.escape(L.name)}"]`);
      if (!col) continue;
      const canvases = col.querySelectorAll("canvas.map");
      for (let c = 0; c < C; c++) cs.paint(canvases[c], q, c * H * W, H, W, map);
      const span = global ? G : m;
      const bar = col.querySelector(".legend canvas");
      const lg = new Uint8Array(64);
      for (let i = 0; i < 64; i++) lg[i] = Math.round(i * 255 / 63);
      cs.paint(bar, lg, 0, 1, 64, map);
      col.querySelector(".legend .lo").textContent = L.signed ? `−${fmt(span)}` : "0";
      col.querySelector(".legend .hi").textContent = `${L.signed ? "+" : ""}${fmt(span)}`;
      col.querySelector(".legend").title = `${L.signed ? "blue < 0 < red" : "dark = 0, yellow = high"}; this ` +
        `layer's values span ${fmt(L.lo)} … ${fmt(L.hi)}${global ? " (scale shared by every shown layer)" : ""}`;
    }
  }
  function fmt(v) { return Math.abs(v) >= 100 ? v.toFixed(0) : (+v.toPrecision(2)).toString(); }

  function render(d) {
    if (!cols.firstChild) build(d);
    data = d;
    input64 = d.input;
    root.dataset.inputB64 = d.input;
    const empty = d.no_ink;
    if (!kept) { root.dataset.state = empty ? "empty" : "predicted"; status.classList.remove("error"); }
    document.getElementById("prediction").textContent = empty ? "" : d.prediction;
    document.getElementById("empty").hidden = !empty;
    const rows = document.querySelectorAll("#probs .prob");
    d.probabilities.forEach((p, i) => {
      rows[i].querySelector(".bar").style.width = empty ? "0" : `${(100 * p).toFixed(1)}%`;
      rows[i].querySelector(".val").textContent = empty ? "–" : `${(100 * p).toFixed(1)}%`;
      rows[i].classList.toggle("top", i === d.index && !empty);
    });
    const lrows = document.querySelectorAll("#logits .logit");
    const lmax = Math.max(1e-9, ...d.logits.map(Math.abs)), top = d.logits.indexOf(Math.max(...d.logits));
    d.logits.forEach((v, i) => {
      const bar = lrows[i].querySelector(".bar");
      bar.style.width = empty ? "0" : `${(50 * Math.abs(v) / lmax).toFixed(1)}%`;
      bar.style.left = v >= 0 ? "50%" : `${(50 - 50 * Math.abs(v) / lmax).toFixed(1)}%`;
      bar.classList.toggle("neg", v < 0);
      lrows[i].querySelector(".val").textContent = empty ? "–" : v.toFixed(2);
      lrows[i].classList.toggle("top", i === top && !empty);
    });
    const [C, H, W] = d.input_shape, inp = cs.b64bytes(d.input);
    const small = el("canvas", { width: W, height: H });
    const sctx = small.getContext("2d"), img = sctx.createImageData(W, H);
    for (let p = 0; p < H * W; p++) {
      for (let c = 0; c < 3; c++) img.data[p * 4 + c] = C === 1 ? inp[p] : inp[c * H * W + p];
      img.data[p * 4 + 3] = 255;
    }
    sctx.putImageData(img, 0, 0);
    const view = document.getElementById("inputview").getContext("2d");
    view.imageSmoothingEnabled = false;
    view.drawImage(small, 0, 0, 140, 140);
    paintAll();
    if (drill.at && !empty) openDrill(...drill.at);
    window.convscopeAttr.update(rid, d);
    root.dataset.updates = String(+(root.dataset.updates || 0) + 1);
  }

  // ---- connections on hover
  function clearLinks() {
    svg.replaceChildren(); info.hidden = true;
    document.querySelectorAll(".lit").forEach((n) => n.classList.remove("lit"));
  }
  function sourcesOf(name, c) {    // the feeding layer (hidden batch norm skipped) and the channels read
    const L = byName[name];
    let chans, feed = L.feed;
    const cin = feed === "input" ? net.input_shape[0] : feed ? byName[feed].shape[0] : 0;
    if (L.link.mode === "same") chans = [c];
    else if (L.link.mode === "group") {
      const cg = cin / L.link.groups, g = Math.floor(c / (L.shape[0] / L.link.groups));
      chans = Array.from({ length: cg }, (_, k) => g * cg + k);
    } else chans = Array.from({ length: cin }, (_, k) => k);
    while (feed && feed !== "input" && byName[feed].norm && !showBn.checked) {
      const F = byName[feed];
      if (F.link.mode !== "same") {
        const n = F.feed === "input" ? net.input_shape[0] : F.feed ? byName[F.feed].shape[0] : 0;
        chans = Array.from({ length: n }, (_, k) => k);
      }
      feed = F.feed;
    }
    return { feed, chans };
  }
  function center(node, side) {
    const r = node.getBoundingClientRect(), base = root.getBoundingClientRect();
    return [(side === "right" ? r.right : r.left) - base.left, (r.top + r.bottom) / 2 - base.top];
  }
  function hover(cv) {
    clearLinks();
    const name = cv.closest(".layer").dataset.layer, c = +cv.dataset.ch, L = byName[name];
    const { feed, chans } = sourcesOf(name, c);
    cv.classList.add("lit");
    const base = root.getBoundingClientRect();
    svg.setAttribute("width", base.width); svg.setAttribute("height", base.height);
    const to = center(cv, "left");
    const view = scroller.getBoundingClientRect();
    const clampY = (y) => Math.min(view.bottom - base.top, Math.max(view.top - base.top, y));
    const srcs = feed === "input" ? [document.getElementById("inputview")]
      : feed ? chans.map((k) => cols.querySelector(`.layer[data-layer="${CSS.escape(feed)}"] canvas[data-ch="${k}"]`))
      : [];
    for (const s of srcs) {
      if (!s) continue;
      s.classList.add("lit");
      const from = center(s, "right");
      const line = document.createElementNS(SVGNS, "line");
      line.setAttribute("x1", from[0]); line.setAttribute("y1", clampY(from[1]));
      line.setAttribute("x2", to[0]); line.setAttribute("y2", to[1]);
      svg.append(line);
    }
    info.replaceChildren();
    let text;
    if (!feed) text = `${name} ${c}: reads an operation outside the named layers (no lines drawn)`;
    else if (L.kind === "Conv2d") {
      text = `${name} channel ${c} = Σ over ${chans.length} map${chans.length > 1 ? "s" : ""} of ${feed} ` +
        `(${L.kernels ? L.kernels.shape.slice(2).join("×") : "k×k"} kernels below)${L.kernels && L.kernels.bias ? " + bias" : ""}`;
    } else if (L.link.mode === "same") text = `${name} channel ${c} = ${L.kind}(${feed} channel ${chans[0]})`;
    else text = `${name} channel ${c} reads all ${chans.length} channels of ${feed}`;
    info.append(el("div", {}, text));
    if (L.kind === "Conv2d" && L.kernels) info.append(kernelStrip(L, c));
    info.hidden = false;
    const r = cv.getBoundingClientRect();
    info.style.left = `${Math.min(window.innerWidth - 320, r.right + 8)}px`;
    info.style.top = `${Math.min(window.innerHeight - 140, r.top)}px`;
  }
  function kernelStrip(L, c) {
    const [, cg, kh, kw] = L.kernels.shape, q = cs.b64bytes(L.kernels.data);
    const strip = el("div", { class: "kernels" }), shown = Math.min(cg, 64);
    for (let k = 0; k < shown; k++) {
      const cv = el("canvas", { width: kw, height: kh, class: "kernel" });
      cs.paint(cv, q, ((c * cg) + k) * kh * kw, kh, kw, cs.DIVERGING);
      strip.append(cv);
    }
    if (cg > shown) strip.append(el("span", { class: "hint" }, ` +${cg - shown} more`));
    strip.append(el("div", { class: "hint" }, `blue < 0 < red, |w| ≤ ${fmt(L.kernels.max_abs)}`));
    return strip;
  }
  cols.addEventListener("mouseover", (ev) => {
    const cv = ev.target.closest("canvas.map"); if (cv) hover(cv);
  });
  cols.addEventListener("mouseleave", clearLinks);
  scroller.addEventListener("scroll", clearLinks);

  // ---- drill-down: one output pixel of a conv layer, with its numbers
  const drill = { at: null };
  cols.addEventListener("click", (ev) => {
    const cv = ev.target.closest("canvas.map.conv");
    if (!cv || !input64) return;
    const name = cv.closest(".layer").dataset.layer, [, H, W] = byName[name].shape;
    const r = cv.getBoundingClientRect();
    const y = Math.min(H - 1, Math.floor((ev.clientY - r.top) / r.height * H));
    const x = Math.min(W - 1, Math.floor((ev.clientX - r.left) / r.width * W));
    openDrill(name, +cv.dataset.ch, y, x);
  });
  cols.addEventListener("keydown", (ev) => {      // the keyboard path: Enter (or Space) on a focused conv map
    const cv = ev.target.closest("canvas.map.conv");
    if (!cv || !input64 || (ev.key !== "Enter" && ev.key !== " ")) return;
    ev.preventDefault();
    const name = cv.closest(".layer").dataset.layer, [, H, W] = byName[name].shape;
    openDrill(name, +cv.dataset.ch, Math.floor(H / 2), Math.floor(W / 2));
  });
  function closeDrill() { drill.at = null; drillBox.hidden = true; drillBox.replaceChildren(); save(); }
  async function openDrill(layer, ch, y, x) {
    drill.at = [layer, ch, y, x];
    save();
    const body = JSON.stringify({ layer, ch, y, x, input: input64 });
    const res = await fetch(`/api/run/${encodeURIComponent(rid)}/conv`,
                            { method: "POST", headers: { "Content-Type": "application/json" }, body });
    const d = await res.json();
    drillBox.hidden = false;
    if (!res.ok) { drillBox.replaceChildren(el("p", { class: "error" }, d.error || `error ${res.status}`)); return; }
    drillBox.replaceChildren(...window.convscopeConv.render(d, { rid, input: input64, feedOf: (n) => byName[n].feed,
                                                                 close: closeDrill }));
    drillBox.dataset.at = `${layer}/${ch}/${y}/${x}`;
    drillBox.dataset.done = String(+(drillBox.dataset.done || 0) + 1);
  }

  // /run/RID/draw?test_index=N (the Training page's confusion cells link here): that test image, shown on the
  // canvas and sent as an upload is (the same reading and preparation as `convscope predict` of the file)
  async function loadTestImage(index) {
    const res = await fetch(`/api/run/${encodeURIComponent(rid)}/test_image/${encodeURIComponent(index)}`);
    if (!res.ok) {
      let msg = `error ${res.status}`;
      try { msg = (await res.json()).error || msg; } catch (e) { /* not JSON */ }
      kept = `test image ${index}: ${msg}`;
      status.textContent = kept;
      status.classList.add("error");
      root.dataset.state = "error";
      schedule();       // still build the network view (blank pad), under the kept message
      return;
    }
    const blob = await res.blob();
    const label = res.headers.get("x-label");
    const bitmap = await createImageBitmap(blob);
    clear();
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(bitmap, 0, 0, pad.width, pad.height);
    root.dataset.testIndex = String(index);
    await sendReplacing(blob, "image/png");
    if (label !== null) status.textContent = `test image ${index} (true class ${label}); ` + status.textContent;
  }

  const testIndex = new URLSearchParams(location.search).get("test_index");
  if (testIndex !== null && testIndex !== "") loadTestImage(testIndex);
  else restore();    // the drawing kept from before (Back), else the empty canvas: "draw a digit" at once
})();
