"""Routes of the live training dashboard: the run folders as they are now (training, finished, stopped), their
metrics and diagnostics read incrementally, ``convscope doctor``'s findings, the misclassified test images of a
confusion cell, and one test image (what the Draw page loads for ``?test_index=N``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from . import live, testset
from .runs import RunEntry
from .security import WebError
from .views import pages
from .views.layout import page


def live_router(index: live.LiveIndex) -> APIRouter:
    """The dashboard's API over the runs under ``index.roots``; runs that finish are added to ``index.runs``."""
    runs = index.runs
    router = APIRouter()

    def entry(rid: str) -> RunEntry:
        index.refresh()
        if rid not in runs:
            raise WebError(404, f"no finished run {rid!r} here (still training, stopped, or unknown); "
                                f"finished runs: {', '.join(runs) or 'none'}")
        return runs[rid]

    def dashboard(title: str, only: str | None) -> HTMLResponse:
        return HTMLResponse(page(title, pages.training_body(only), nav=pages.nav_for(only),
                                 scripts=["common.js", "training.js"]))

    @router.get("/run/{rid}/training", response_class=HTMLResponse)
    def training_page(rid: str) -> HTMLResponse:
        index.path(rid)                  # a run still training has its page too
        return dashboard(f"training · {rid}", rid)

    @router.get("/training", response_class=HTMLResponse)
    def training_all() -> HTMLResponse:
        return dashboard("training", None)

    @router.get("/api/live")
    def api_live() -> dict[str, Any]:
        return {"runs": index.listing()}

    @router.get("/api/live/{rid}/metrics")
    def api_live_metrics(rid: str, offset: int = Query(0, ge=0)) -> dict[str, Any]:
        return live.metrics_chunk(index.path(rid), offset)

    @router.get("/api/live/{rid}/diagnostics")
    def api_live_diagnostics(rid: str, offset: int = Query(0, ge=0)) -> dict[str, Any]:
        return live.diagnostics_chunk(index.path(rid), offset)

    @router.get("/api/live/{rid}/doctor")
    def api_live_doctor(rid: str) -> dict[str, Any]:
        return live.doctor_findings(index.path(rid))

    @router.get("/api/run/{rid}/misclassified")
    def api_misclassified(rid: str, true: int, pred: int) -> dict[str, Any]:
        return testset.misclassified(entry(rid), true, pred)

    @router.get("/api/run/{rid}/test_image/{index}")
    def api_test_image(rid: str, index: int) -> Response:
        png, label = testset.test_image_png(entry(rid), index)
        return Response(png, media_type="image/png", headers={"x-label": label.encode("ascii", "replace").decode()})

    return router
