// Matrix explorer: fetch the conv-as-matrix pattern for the chosen geometry and link the three views:
// hovering an output pixel highlights its matrix row and the input pixels it reads; hovering a matrix cell
// shows which kernel weight it holds (and its input pixel and output pixel).
"use strict";
(function () {
  const form = document.getElementById("mform");
  const info = document.getElementById("m-info"), hover = document.getElementById("m-hover");
  const el = convscope.el;
  let M = null, rowCols = [];

  function grid(container, h, w, label, prefix) {     // the output grid's cells are focusable (keyboard path)
    container.replaceChildren();
    container.style.gridTemplateColumns = `repeat(${w}, 2.6em)`;
    for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
      const idx = i * w + j;
      const attrs = { class: "cell", id: `${prefix}-${idx}`, "data-idx": idx };
      if (prefix === "m-out") Object.assign(attrs, { tabindex: "0", "aria-label": `output (${i}, ${j}): row ${idx}` });
      container.append(el("div", attrs, label(i, j, idx)));
    }
  }
  function clearHl() {
    document.querySelectorAll(".hl, .hl2").forEach((n) => n.classList.remove("hl", "hl2"));
  }
  // 1-based names as on the grids: x12 = input row 1, column 2
  function nm(p, idx, w) { return `${p}${Math.floor(idx / w) + 1}${idx % w + 1}`; }

  function showRow(r) {
    clearHl();
    document.getElementById(`m-out-${r}`).classList.add("hl");
    document.getElementById(`m-row-${r}`).classList.add("hl");
    for (const [c, name] of rowCols[r]) {
      document.getElementById(`m-in-${c}`).classList.add("hl");
      document.getElementById(`m-cell-${r}-${c}`).classList.add("hl2");
    }
    const reads = rowCols[r].map(([c, n]) => `${n}·${nm("x", c, M.input[1])}`).join(" + ");
    hover.textContent = `${nm("y", r, M.output[1])} = row ${r} of the matrix · x = ${reads}`;
  }
  function showCell(r, c) {
    clearHl();
    const name = (rowCols[r].find(([cc]) => cc === c) || [null, null])[1];
    document.getElementById(`m-out-${r}`).classList.add("hl");
    document.getElementById(`m-in-${c}`).classList.add("hl");
    document.getElementById(`m-cell-${r}-${c}`).classList.add("hl2");
    if (name) for (const t of name.split("+")) {
      const k = M.taps.indexOf(t);
      if (k >= 0) document.getElementById(`m-k-${k}`).classList.add("hl");
    }
    hover.textContent = `row ${r} (output ${nm("y", r, M.output[1])}), column ${c} (input ${nm("x", c, M.input[1])}): ` +
      (name ? `holds ${name}` : "0: this output does not read this input pixel");
  }

  function render(m) {
    M = m;
    rowCols = Array.from({ length: m.shape[0] }, () => []);
    for (const [r, c, n] of m.entries) rowCols[r].push([c, n]);
    const [h, w] = m.input, [ho, wo] = m.output, [kh, kw] = m.kernel;
    grid(document.getElementById("m-input"), h, w, (i, j) => `x${i + 1}${j + 1}`, "m-in");
    grid(document.getElementById("m-kernel"), kh, kw, (i, j, k) => m.taps[k], "m-k");
    grid(document.getElementById("m-output"), ho, wo, (i, j) => `y${i + 1}${j + 1}`, "m-out");
    const lookup = new Map(m.entries.map(([r, c, n]) => [r * m.shape[1] + c, n]));
    const table = el("table", { class: "mtable" + (m.shape[1] > 36 ? " dense" : "") });
    const head = el("tr");
    head.append(el("th", {}, ""));
    for (let c = 0; c < m.shape[1]; c++) head.append(el("th", {}, String(c)));
    table.append(head);
    for (let r = 0; r < m.shape[0]; r++) {
      const tr = el("tr", { id: `m-row-${r}`, "data-row": r });
      tr.append(el("th", {}, String(r)));
      for (let c = 0; c < m.shape[1]; c++) {
        const n = lookup.get(r * m.shape[1] + c);
        tr.append(el("td", { id: `m-cell-${r}-${c}`, "data-row": r, "data-col": c, class: n ? "nz" : "z" },
                     n || "0"));
      }
      table.append(tr);
    }
    document.getElementById("m-matrix").replaceChildren(table);
    document.getElementById("m-shape").textContent =
      `${m.shape[0]} x ${m.shape[1]}, ${m.nnz} non-zeros, density ${(m.nnz / (m.shape[0] * m.shape[1])).toFixed(4)}`;
    document.getElementById("m-structure").textContent = m.structure;
    info.textContent = `input ${h} x ${w}, kernel ${kh} x ${kw}, stride ${m.stride}, padding ${m.padding}, ` +
      `dilation ${m.dilation} -> output ${ho} x ${wo}`;
    hover.textContent = "\u00a0";
  }

  // hover or keyboard focus (Tab reaches every output cell) light the same row and explanation
  for (const kind of ["mouseover", "focusin"]) {
    document.getElementById("m-output").addEventListener(kind, (ev) => {
      const t = ev.target.closest(".cell"); if (t) showRow(+t.dataset.idx);
    });
  }
  document.getElementById("m-matrix").addEventListener("mouseover", (ev) => {
    const t = ev.target.closest("td"); if (t) showCell(+t.dataset.row, +t.dataset.col);
  });

  // an invalid geometry leaves nothing of the previous one on screen: only the error
  function clearAll(message) {
    M = null; rowCols = [];
    for (const id of ["m-input", "m-kernel", "m-output", "m-matrix"]) document.getElementById(id).replaceChildren();
    for (const id of ["m-shape", "m-structure"]) document.getElementById(id).textContent = "";
    hover.textContent = "\u00a0";
    info.textContent = message;
    info.classList.add("error");
  }
  let seq = 0;
  async function load() {
    const q = new URLSearchParams(new FormData(form)), mine = ++seq;
    let res, data;
    try {
      res = await fetch(`/api/matrix?${q}`);
      data = await res.json();
    } catch (e) { data = { error: "server unreachable: " + e }; }
    if (mine !== seq) return;                    // a newer geometry was asked for meanwhile
    if (!res || !res.ok) { clearAll(data.error || `error ${res.status}`); document.body.dataset.matrix = "invalid"; return; }
    info.classList.remove("error");
    render(data);
    document.body.dataset.matrix = q.toString();
  }
  form.addEventListener("input", load);
  form.addEventListener("submit", (ev) => ev.preventDefault());
  window.convscopeTrained.start(form).then(load, load);   // a trained layer first (it sets the geometry)
})();
