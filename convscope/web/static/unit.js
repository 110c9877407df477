// Unit page: follows the background precomputation (then opens the page), and computes this unit's feature
// visualization and projections on demand (POST; the server runs them on its background thread); those the
// server already holds (data-cached) are shown at once.
"use strict";
(function () {
  const el = convscope.el;
  const pending = document.getElementById("pending");
  if (pending) {
    const step = document.getElementById("pending-step");
    const tick = async () => {
      try {
        const s = await (await fetch(pending.dataset.status)).json();
        if (s.state === "ready" || s.state === "failed") { location.reload(); return; }
        step.textContent = s.state === "queued" ? "waiting for another run to finish" : s.step;
      } catch (err) { step.textContent = `no answer from the server (${err.message}); retrying`; }
      setTimeout(tick, 400);
    };
    tick();
    return;
  }
  function fig(src, caption, cls) {
    const f = el("figure");
    f.append(el("img", { src, alt: caption, class: cls || "unitviz" }), el("figcaption", {}, caption));
    return f;
  }
  const show = {
    visualize(box, r) {
      box.append(fig(r.image, `optimized: ${r.value.toFixed(2)} (${r.measure})`));
      if (r.natural) box.append(fig(r.natural.image, `best test image #${r.natural.index}: ${r.natural.value.toFixed(2)}`));
    },
    project(box, r) {
      const t = el("table", { class: "projections" }), head = el("tr");
      for (const h of ["test image", "patch", "deconvnet", "guided backprop"]) head.append(el("th", {}, h));
      t.append(head);
      for (const row of r.records) {
        const tr = el("tr");
        tr.append(el("td", {}, `#${row.index} (${row.value.toFixed(2)})`));
        for (const k of ["patch", "deconvnet", "guided"]) {
          const td = el("td");
          td.append(el("img", { src: row[k], alt: k, class: "unitviz small" }));
          tr.append(td);
        }
        t.append(tr);
      }
      box.append(t);
    },
  };
  for (const sec of document.querySelectorAll("section.ondemand")) {
    const button = sec.querySelector("button.compute"), status = sec.querySelector(".status");
    const box = sec.querySelector(".result");
    button.addEventListener("click", async () => {
      button.disabled = true;
      const t0 = performance.now();
      status.textContent = " computing… (a few seconds)";
      try {
        const res = await fetch(sec.dataset.url, { method: "POST" });
        const body = await res.json();
        if (!res.ok) throw new Error(body.error || res.statusText);
        box.replaceChildren();
        show[sec.dataset.kind](box, body);
        status.textContent = ` done in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
        sec.dataset.done = "1";
        button.hidden = true;
      } catch (err) {
        status.textContent = ` failed: ${err.message}`;
        button.disabled = false;
      }
    });
    if (sec.dataset.cached === "1") button.click();      // computed before: the server answers from its cache
  }
})();
