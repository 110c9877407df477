// convscope notebook widget: draw a picture, see the run's prediction and every layer's feature maps, updating while
// you draw. The page's helpers (colour maps, base64, painting) come first in this module: convscope/web/static/
// common.js is prepended by the Python side (one copy of them). No server, no network: the picture goes to the
// kernel through the widget's model ("image"), the prediction comes back the same way ("prediction").
"use strict";

function render({ model, el }) {
  const C = window.convscope;
  const root = C.el("div", { class: "convscope-draw" });
  const left = C.el("div", { class: "cs-left" }), right = C.el("div", { class: "cs-right" });
  const pad = C.el("canvas", { width: 280, height: 280, class: "cs-pad" });
  const brush = C.el("input", { type: "range", min: 8, max: 40, value: 22, title: "brush width" });
  const clearBtn = C.el("button", { type: "button" }, "clear");
  const status = C.el("div", { class: "cs-status" }, "");
  const controls = C.el("div", { class: "cs-controls" });
  controls.append(C.el("span", {}, "brush"), brush, clearBtn);
  left.append(pad, controls, status);
  const head = C.el("div", { class: "cs-head" });
  const inputView = C.el("canvas", { width: 112, height: 112, class: "cs-input", title: "the model's input" });
  const prediction = C.el("div", { class: "cs-prediction" }, "–");
  head.append(inputView, prediction);
  const probs = C.el("div", { class: "cs-probs" });
  right.append(head, probs);
  const layers = C.el("div", { class: "cs-layers" });
  root.append(left, right, layers);
  el.append(root);

  let drawing = false, last = null, inFlight = false, pending = false, built = false;
  const { clear, pos, stroke } = C.pen(pad, brush);
  clear();
  // one picture in flight: while the kernel computes, later strokes wait and the newest drawing is sent next
  function send() {
    if (inFlight) { pending = true; return; }
    const url = pad.toDataURL("image/png");
    if (url === model.get("image")) return;   // unchanged: the kernel would not be told, nothing to wait for
    inFlight = true; root.dataset.busy = "1";
    model.set("image", url);
    model.save_changes();
  }
  function onDown(ev) {
    ev.preventDefault(); drawing = true; last = pos(ev); stroke(last, last);
    try { pad.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic pointers */ }
    send();
  }
  function onMove(ev) { if (drawing) { const p = pos(ev); stroke(last, p); last = p; send(); } }
  function onUp() { if (drawing) { drawing = false; send(); } }
  pad.addEventListener("pointerdown", onDown);
  pad.addEventListener("pointermove", onMove);
  pad.addEventListener("pointerup", onUp);
  pad.addEventListener("pointercancel", onUp);
  clearBtn.addEventListener("click", () => { clear(); send(); });

  function build(data) {
    probs.replaceChildren();
    data.classes.forEach((c) => {
      const row = C.el("div", { class: "cs-prob", "data-class": c });
      row.append(C.el("span", { class: "cs-label" }, c), C.el("span", { class: "cs-bar" }),
                 C.el("span", { class: "cs-val" }, ""));
      probs.append(row);
    });
    layers.replaceChildren();
    for (const L of data.layers) {
      const [Cl, H, W] = L.shape;
      const box = C.el("div", { class: "cs-layer", "data-layer": L.name });
      box.append(C.el("div", { class: "cs-layer-title" }, `${L.name} · ${L.kind} · ${Cl} x ${H} x ${W}`));
      const tiles = C.el("div", { class: "cs-maps" });
      for (let c = 0; c < Cl; c++) {
        tiles.append(C.el("canvas", { width: W, height: H, class: "cs-map", title: `${L.name} channel ${c}` }));
      }
      box.append(tiles); layers.append(box);
    }
    built = true;
  }
  function show(data) {
    if (!data || !data.classes) return;
    if (!built) build(data);
    prediction.textContent = data.no_ink ? "–" : data.prediction;
    const rows = probs.querySelectorAll(".cs-prob");
    data.probabilities.forEach((p, i) => {
      rows[i].querySelector(".cs-bar").style.width = `${(100 * p).toFixed(1)}%`;
      rows[i].querySelector(".cs-val").textContent = `${(100 * p).toFixed(1)}%`;
      rows[i].classList.toggle("cs-top", i === data.index && !data.no_ink);
    });
    const [Ci, H, W] = data.input_shape, inp = C.b64bytes(data.input);
    const small = C.el("canvas", { width: W, height: H });
    const sctx = small.getContext("2d"), img = sctx.createImageData(W, H);
    for (let p = 0; p < H * W; p++) {
      for (let c = 0; c < 3; c++) img.data[p * 4 + c] = Ci === 1 ? inp[p] : inp[c * H * W + p];
      img.data[p * 4 + 3] = 255;
    }
    sctx.putImageData(img, 0, 0);
    const view = inputView.getContext("2d");
    view.imageSmoothingEnabled = false;
    view.drawImage(small, 0, 0, inputView.width, inputView.height);
    for (const L of data.layers) {
      const [Cl, Hl, Wl] = L.shape, q = C.b64bytes(L.data);
      const canvases = layers.querySelectorAll(`.cs-layer[data-layer="${CSS.escape(L.name)}"] canvas`);
      const map = L.signed ? C.DIVERGING : C.VIRIDIS;
      for (let c = 0; c < Cl; c++) C.paint(canvases[c], q, c * Hl * Wl, Hl, Wl, map);
    }
  }
  function answered() {   // the kernel processed a picture (a prediction or an error)
    inFlight = false; root.dataset.busy = "0";
    const err = model.get("error");
    status.textContent = err ? err : (model.get("prediction").no_ink
      ? "no ink found: draw a digit (the maps show the empty input)" : `${model.get("updates")} updates`);
    if (pending) { pending = false; send(); }
  }
  const onPrediction = () => show(model.get("prediction"));
  model.on("change:prediction", onPrediction);
  model.on("change:updates", answered);
  if (model.get("prediction") && model.get("prediction").classes) show(model.get("prediction"));
  else send();   // the empty canvas: the layers show at once
  return () => {
    model.off("change:prediction", onPrediction);
    model.off("change:updates", answered);
  };
}

export default { render };
