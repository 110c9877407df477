// Attribution overlays on the Draw page: for the current drawing and its predicted class, saliency, Grad-CAM,
// integrated gradients and occlusion over the model input, each labelled with the trust audit's verdict for this
// model (RUN/inspect/audit.json); a constant (e.g. all-zero) map is flagged, not drawn as a blank. Computed on the
// server on request (the checkbox), one request in flight, the latest drawing wins. The audit button below runs
// the trust audit on the server (POST /api/run/RUN/audit), follows its progress (GET, also after a reload) and
// relabels the maps from the new audit.json when it is done.
"use strict";
(function () {
  const el = (...a) => window.convscope.el(...a);
  const box = document.getElementById("attr"), on = document.getElementById("attr-on");
  const maps = document.getElementById("attr-maps"), note = document.getElementById("attr-note");
  const status = document.getElementById("attr-status");
  let rid = null, latest = null, inFlight = false, pendingInput = null, lastClass = null;

  function overlay(m, input, shape) {      // the input in grey, the map on top (red > 0, blue < 0)
    const [C, H, W] = shape, cv = el("canvas", { width: W, height: H, class: "attrmap" });
    const g = cv.getContext("2d"), img = g.createImageData(W, H), px = img.data;
    const q = window.convscope.b64bytes(m.data);
    for (let p = 0; p < H * W; p++) {
      const grey = C === 1 ? input[p] : (input[p] + input[H * W + p] + input[2 * H * W + p]) / 3;
      const v = m.signed ? (q[p] - 127.5) / 127.5 : q[p] / 255;      // -1..1 on the map's own scale
      const a = Math.min(1, Math.abs(v)) * 0.85, col = v >= 0 ? [230, 40, 20] : [30, 110, 230];
      for (let c = 0; c < 3; c++) px[p * 4 + c] = Math.round(grey * 0.6 * (1 - a) + col[c] * a);
      px[p * 4 + 3] = 255;
    }
    g.putImageData(img, 0, 0);
    return cv;
  }
  const sentence = (t) => t.charAt(0).toUpperCase() + t.slice(1);
  function verdict(m) {
    if (!m.audit) return el("span", { class: "verdict none" }, "not audited");
    const text = m.audit.trusted ? "audit: trusted" : `audit: not trusted (${m.audit.verdict.replace(/^no: /, "")})`;
    return el("span", { class: "verdict " + (m.audit.final === false ? "none" : m.audit.trusted ? "ok" : "bad") },
              m.audit.final === false ? `${text}, so far (the audit is not finished)` : text);
  }
  function render(d, input64, shape) {
    const input = window.convscope.b64bytes(input64);
    maps.replaceChildren();
    for (const m of d.methods) {
      const f = el("figure", { class: "attr" + (m.constant ? " constant" : ""), "data-method": m.method,
                               title: m.description + (m.layer ? ` (layer ${m.layer})` : "") +
                                      (m.baseline ? `; baseline: ${m.baseline}` : "") });
      if (m.constant) f.append(el("div", { class: "flat" }, "constant map: this method credits no pixel for this drawing"));
      else f.append(overlay(m, input, shape));
      const cap = el("figcaption");
      cap.append(el("b", {}, m.method.replace(/_/g, " ")), el("br"), verdict(m));
      f.append(cap);
      maps.append(f);
    }
    lastClass = d.class;
    note.textContent = `Explaining class ${d.class} (the prediction). ${sentence(d.audit_note)}.`;
    box.dataset.done = String(+(box.dataset.done || 0) + 1);
  }
  async function request(input64, shape) {
    inFlight = true;
    status.textContent = "computing…";
    const t0 = performance.now();
    try {
      const res = await fetch(`/api/run/${encodeURIComponent(rid)}/attribution`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ input: input64 }) });
      const d = await res.json();
      if (!res.ok) { maps.replaceChildren(); status.textContent = d.error || `error ${res.status}`; }
      else { render(d, input64, shape); status.textContent = `computed in ${Math.round(performance.now() - t0)} ms`; }
    } catch (e) {
      status.textContent = "server unreachable: " + e;
    } finally {
      inFlight = false;
      if (pendingInput) { const p = pendingInput; pendingInput = null; request(...p); }
    }
  }
  function update(runId, d) {
    rid = runId;
    latest = d;
    if (!on.checked) return;
    if (d.no_ink) { maps.replaceChildren(); note.textContent = ""; status.textContent = "draw a digit to explain it"; return; }
    if (inFlight) pendingInput = [d.input, d.input_shape]; else request(d.input, d.input_shape);
  }
  on.addEventListener("change", () => {
    if (on.checked && latest) update(rid, latest);
    else if (!on.checked) { maps.replaceChildren(); note.textContent = ""; status.textContent = ""; }
  });
  window.convscopeAttr = { update };

  // ---- the audit button
  const auditBox = document.getElementById("audit"), runBtn = document.getElementById("audit-run");
  const nImages = document.getElementById("audit-images"), bar = document.getElementById("audit-progress");
  const auditStatus = document.getElementById("audit-status");
  const runId = document.getElementById("draw").dataset.run;
  const api = `/api/run/${encodeURIComponent(runId)}/audit`;
  let perImage = null, polling = null, shownState = null;
  const duration = (s) => s < 90 ? `${Math.max(1, Math.round(s))} s` : `${Math.round(s / 60)} min`;

  function label() {
    const n = Math.round(+nImages.value);
    runBtn.textContent = perImage && n > 0 ? `Run the trust audit (about ${duration(n * perImage)} here)`
                                           : "Run the trust audit";
  }
  function relabel(v) {            // the maps on screen get the new audit's verdicts
    for (const f of maps.querySelectorAll("figure[data-method]")) {
      const old = f.querySelector(".verdict");
      if (old) old.replaceWith(verdict({ audit: v.verdicts[f.dataset.method] }));
    }
    if (lastClass !== null) note.textContent = `Explaining class ${lastClass} (the prediction). ${sentence(v.note)}.`;
  }
  function show(st) {
    auditBox.dataset.state = st.state;
    perImage = st.seconds_per_image;
    if (shownState === null && st.default_images) nImages.value = st.default_images;
    if (st.test_images) nImages.max = st.test_images;
    label();
    const running = st.state === "running";
    bar.hidden = !running;
    runBtn.disabled = running || !!st.readonly || !st.test_images;
    nImages.disabled = runBtn.disabled;
    if (st.readonly) auditStatus.textContent = `Not here: ${st.readonly}.`;
    else if (!st.test_images) auditStatus.textContent = "The audit needs this run's test split, which is not here.";
    else if (running) {
      bar.value = st.fraction;
      const k = st.rows_done.length, n = st.rows.length;
      auditStatus.textContent = `Auditing ${st.images} images: ${st.current} (${k + 1} of ${n}), ` +
        `${duration(st.elapsed)} so far, about ${duration(st.left)} left. One audit at a time per run; ` +
        "it goes on if this page is closed.";
    } else if (st.state === "done") {
      auditStatus.textContent = `Audit of ${st.images} images done in ${duration(st.seconds)}; the labels come ` +
        "from the new inspect/audit.json.";
    } else if (st.state === "failed") auditStatus.textContent = `The audit stopped: ${st.error}`;
    else auditStatus.textContent = st.verdicts.images ? `The run's inspect/audit.json holds an audit of ` +
      `${st.verdicts.images} images${st.verdicts.complete ? "" : " (not finished)"}; running it again replaces it.`
      : "No audit in this run folder yet.";
    if (shownState === "running" && st.state !== "running") relabel(st.verdicts);
    shownState = st.state;
    if (running && !polling) polling = setInterval(poll, 1500);
    if (!running && polling) { clearInterval(polling); polling = null; }
  }
  async function poll() {
    try {
      const res = await fetch(api), st = await res.json();
      if (res.ok) show(st); else auditStatus.textContent = st.error || `error ${res.status}`;
    } catch (e) {
      auditStatus.textContent = "server unreachable: " + e;
    }
  }
  runBtn.addEventListener("click", async () => {
    runBtn.disabled = true;
    try {
      const res = await fetch(api, { method: "POST", headers: { "Content-Type": "application/json" },
                                     body: JSON.stringify({ images: Math.round(+nImages.value) }) });
      const st = await res.json();
      if (res.ok) show(st); else { auditStatus.textContent = st.error || `error ${res.status}`; poll(); }
    } catch (e) {
      auditStatus.textContent = "server unreachable: " + e;
      runBtn.disabled = false;
    }
  });
  nImages.addEventListener("input", label);
  poll();
})();
