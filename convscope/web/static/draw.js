// Draw page: a canvas (mouse, touch, pen through Pointer Events) or an uploaded image -> POST the picture,
// show the probabilities and every layer's feature maps; one request in flight, the latest drawing wins.
"use strict";
(function () {
  const root = document.getElementById("draw");
  const rid = root.dataset.run;
  const pad = document.getElementById("pad"), ctx = pad.getContext("2d");
  const brush = document.getElementById("brush"), status = document.getElementById("status");
  let drawing = false, last = null, inFlight = false, pending = null, built = false;

  function clear() { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, pad.width, pad.height); }
  clear();

  function pos(ev) {
    const r = pad.getBoundingClientRect();
    return [(ev.clientX - r.left) * pad.width / r.width, (ev.clientY - r.top) * pad.height / r.height];
  }
  function stroke(a, b) {
    ctx.strokeStyle = "#fff"; ctx.fillStyle = "#fff"; ctx.lineWidth = +brush.value; ctx.lineCap = "round";
    ctx.lineJoin = "round"; ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
  }
  pad.addEventListener("pointerdown", (ev) => {
    ev.preventDefault(); drawing = true; last = pos(ev); stroke(last, last);
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
  document.getElementById("clear").addEventListener("click", () => { clear(); schedule(); });
  document.getElementById("upload").addEventListener("change", (ev) => {
    const f = ev.target.files[0];
    if (f) send(f, f.type || "application/octet-stream");
  });

  function schedule() {
    pad.toBlob((blob) => { if (inFlight) pending = blob; else send(blob, "image/png"); }, "image/png");
  }
  async function send(blob, type) {
    inFlight = true;
    root.dataset.busy = "1";
    const t0 = performance.now();
    try {
      const res = await fetch(`/api/run/${encodeURIComponent(rid)}/predict`,
                              { method: "POST", headers: { "Content-Type": type }, body: blob });
      const data = await res.json();
      if (!res.ok) { status.textContent = data.error || `error ${res.status}`; }
      else {
        render(data);
        status.textContent = data.no_ink ? "no ink found: draw or upload a digit (the maps show the empty input)"
                                         : `updated in ${Math.round(performance.now() - t0)} ms`;
      }
    } catch (e) {
      status.textContent = "server unreachable: " + e;
    } finally {
      inFlight = false;
      if (pending) { const b = pending; pending = null; send(b, "image/png"); } else root.dataset.busy = "0";
    }
  }

  function build(data) {
    const probs = document.getElementById("probs");
    probs.replaceChildren();
    data.classes.forEach((c, i) => {
      const row = convscope.el("div", { class: "prob", "data-class": c });
      row.append(convscope.el("span", { class: "label" }, c), convscope.el("span", { class: "bar" }),
                 convscope.el("span", { class: "val" }, ""));
      probs.append(row);
    });
    const layers = document.getElementById("layers");
    layers.replaceChildren();
    for (const L of data.layers) {
      const [C, H, W] = L.shape;
      const box = convscope.el("div", { class: "layer", "data-layer": L.name });
      box.append(convscope.el("h3", {}, `${L.name} · ${L.kind} · ${C} x ${H} x ${W}`));
      const tiles = convscope.el("div", { class: "maps" });
      for (let c = 0; c < C; c++) {
        const a = convscope.el("a", { href: `/run/${encodeURIComponent(rid)}/unit/${encodeURIComponent(L.name)}/${c}`,
                                      title: `${L.name} channel ${c}` });
        const cv = convscope.el("canvas", { width: W, height: H, class: "map" + (H <= 7 ? " small" : "") });
        a.append(cv); tiles.append(a);
      }
      box.append(tiles); layers.append(box);
    }
    built = true;
  }

  function render(data) {
    if (!built) build(data);
    document.getElementById("prediction").textContent = data.no_ink ? "–" : data.prediction;
    const rows = document.querySelectorAll("#probs .prob");
    data.probabilities.forEach((p, i) => {
      rows[i].querySelector(".bar").style.width = `${(100 * p).toFixed(1)}%`;
      rows[i].querySelector(".val").textContent = `${(100 * p).toFixed(1)}%`;
      rows[i].classList.toggle("top", i === data.index && !data.no_ink);
    });
    const [C, H, W] = data.input_shape, inp = convscope.b64bytes(data.input);
    const small = convscope.el("canvas", { width: W, height: H });
    const sctx = small.getContext("2d"), img = sctx.createImageData(W, H);
    for (let p = 0; p < H * W; p++) {
      for (let c = 0; c < 3; c++) img.data[p * 4 + c] = C === 1 ? inp[p] : inp[c * H * W + p];
      img.data[p * 4 + 3] = 255;
    }
    sctx.putImageData(img, 0, 0);
    const view = document.getElementById("inputview").getContext("2d");
    view.imageSmoothingEnabled = false;
    view.drawImage(small, 0, 0, 140, 140);
    for (const L of data.layers) {
      const [Cl, Hl, Wl] = L.shape, q = convscope.b64bytes(L.data);
      const canvases = document.querySelectorAll(`.layer[data-layer="${CSS.escape(L.name)}"] canvas`);
      const map = L.signed ? convscope.DIVERGING : convscope.VIRIDIS;
      for (let c = 0; c < Cl; c++) convscope.paint(canvases[c], q, c * Hl * Wl, Hl, Wl, map);
    }
    root.dataset.updates = String(+(root.dataset.updates || 0) + 1);
  }
  schedule();   // the empty canvas: show the layers at once
})();
