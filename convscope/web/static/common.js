// convscope web: shared helpers (colour maps, base64 decoding). Written for this package; no dependencies.
"use strict";
(function () {
  function lut(anchors) {
    // 256 x RGB, piecewise linear between evenly spaced anchors
    const out = new Uint8ClampedArray(256 * 3);
    const n = anchors.length - 1;
    for (let i = 0; i < 256; i++) {
      const t = (i / 255) * n, k = Math.min(Math.floor(t), n - 1), f = t - k;
      for (let c = 0; c < 3; c++) out[i * 3 + c] = anchors[k][c] + f * (anchors[k + 1][c] - anchors[k][c]);
    }
    return out;
  }
  const VIRIDIS = lut([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]]);
  const DIVERGING = lut([[5, 48, 97], [67, 147, 195], [247, 247, 247], [214, 96, 77], [103, 0, 31]]);
  function b64bytes(s) {
    const bin = atob(s), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  // paint q (uint8, H*W values starting at offset) into a canvas through a colour map
  function paint(canvas, q, offset, h, w, map) {
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h), d = img.data;
    for (let p = 0; p < h * w; p++) {
      const v = q[offset + p] * 3;
      d[p * 4] = map[v]; d[p * 4 + 1] = map[v + 1]; d[p * 4 + 2] = map[v + 2]; d[p * 4 + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  // the drawing pad of the Draw page and the notebook widget: white ink on black, the brush width from `brush`
  function pen(pad, brush) {
    const ctx = pad.getContext("2d");
    return {
      clear() { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, pad.width, pad.height); },
      pos(ev) {                       // a pointer event -> canvas pixels (the pad may be shown scaled)
        const r = pad.getBoundingClientRect();
        return [(ev.clientX - r.left) * pad.width / r.width, (ev.clientY - r.top) * pad.height / r.height];
      },
      stroke(a, b) {
        if (a[0] === b[0] && a[1] === b[1]) {   // a tap: Chromium paints no round cap on a zero-length line
          ctx.fillStyle = "#fff"; ctx.beginPath(); ctx.arc(a[0], a[1], +brush.value / 2, 0, 2 * Math.PI); ctx.fill();
          return;
        }
        ctx.strokeStyle = "#fff"; ctx.lineWidth = +brush.value; ctx.lineCap = "round"; ctx.lineJoin = "round";
        ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
      },
    };
  }
  window.convscope = { VIRIDIS, DIVERGING, b64bytes, paint, el, pen };
})();
