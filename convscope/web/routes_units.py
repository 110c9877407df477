"""Routes of the unit pages: the page (at once from the background precomputation, or a progress page that
follows it), its status, and this unit's own feature visualization and projections computed on demand."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from . import compute, units
from .runs import RunEntry
from .security import WebError
from .views import pages
from .views.layout import page


def units_router(runs: dict[str, RunEntry], work: units.UnitWork,
                 refresh: Callable[[], object] = lambda: None) -> APIRouter:
    """``refresh()`` looks for runs that finished since (they join ``runs`` and ``work``'s queue)."""
    router = APIRouter()

    def entry(rid: str) -> RunEntry:
        refresh()
        if rid not in runs:
            raise WebError(404, f"no run {rid!r} here; runs: {', '.join(runs) or 'none'}")
        return runs[rid]

    @router.get("/run/{rid}/unit/{layer}/{ch}", response_class=HTMLResponse)
    def unit_page(rid: str, layer: str, ch: int) -> HTMLResponse:
        r = entry(rid)
        status = work.status(rid)
        title = f"{layer}:{ch} · {rid}"
        if status["state"] in ("queued", "computing"):
            compute.check_unit(r, layer, ch)          # a bad layer or channel is said now, not after the wait
            work.prioritize(rid)
            return HTMLResponse(page(title, pages.unit_pending_body(rid, layer, ch, status), nav=pages.nav_for(rid),
                                     scripts=["common.js", "unit.js"]))
        d = compute.unit_data(r, layer, ch).to_dict()
        with r.lock:      # this unit's pictures computed before (by its buttons): shown at once
            computed = frozenset(k for k in ("visualize", "project") if (f"unit-{k}", layer, ch) in r.cache)
        body = pages.unit_body(d, lambda rel: f"/run/{rid}/file/{rel}", lambda lay, c: f"/run/{rid}/unit/{lay}/{c}",
                               live=True, computed=computed)
        return HTMLResponse(page(title, body, nav=pages.nav_for(rid), scripts=["common.js", "unit.js"]))

    @router.get("/api/run/{rid}/units")
    def api_units_status(rid: str) -> dict[str, Any]:
        entry(rid)
        return work.status(rid)

    async def on_demand(rid: str, layer: str, ch: int, kind: str, fn) -> dict[str, Any]:
        r = entry(rid)
        compute.check_unit(r, layer, ch)
        key = (kind, layer, ch)
        with r.lock:
            if key in r.cache:
                return r.cache[key]
        result = await asyncio.wrap_future(work.submit(lambda: fn(r, layer, ch)))
        with r.lock:
            return r.cache.setdefault(key, result)

    @router.post("/api/run/{rid}/unit/{layer}/{ch}/visualize")
    async def api_unit_visualize(rid: str, layer: str, ch: int) -> dict[str, Any]:
        return await on_demand(rid, layer, ch, "unit-visualize", units.unit_visualization)

    @router.post("/api/run/{rid}/unit/{layer}/{ch}/project")
    async def api_unit_project(rid: str, layer: str, ch: int) -> dict[str, Any]:
        return await on_demand(rid, layer, ch, "unit-project", units.unit_projection)

    return router
