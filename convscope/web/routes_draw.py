"""The network view's JSON routes (the Draw page and the matrix explorer's trained mode): the traced structure
of a run's network, one convolution worked out for the page's current input, attribution overlays for it, and
the trust audit that labels them (started by the page's button, run in the background: web/audit_job.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .._json import loads_strict
from .audit_job import AuditJobs
from .convstep import conv_step, decode_input
from .explain import attributions
from .network import network
from .runs import RunEntry
from .security import WebError, read_capped

MAX_JSON_BYTES = 1024 * 1024     # a conv request holds one prepared input (a 3 x 224 x 224 one is ~200 KB)


def router(entry: Callable[[str], RunEntry], audits: AuditJobs) -> APIRouter:
    """The routes, with ``entry(rid)`` resolving a run id (404 for an unknown one)."""
    api = APIRouter()

    @api.get("/api/run/{rid}/network")
    def api_network(rid: str):
        return network(entry(rid))

    async def json_body(request: Request, what: str) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise WebError(415, f"Content-Type {ctype or 'missing'!r}: send a JSON object {what} as "
                                "application/json")
        raw = await read_capped(request, MAX_JSON_BYTES)
        try:
            body = loads_strict(raw)     # a body nested 100,000 deep or holding NaN: a 400 naming it, not a 500
        except ValueError as e:
            raise WebError(400, f"request body is not valid JSON ({e})") from None
        if not isinstance(body, dict):
            raise WebError(400, f"request body: expected a JSON object {what}")
        return body

    async def answer(r: RunEntry, work: Callable[[], dict[str, Any]]) -> Response:
        result = await asyncio.get_running_loop().run_in_executor(r.worker, work)   # one at a time per run
        return Response(json.dumps(result), media_type="application/json")

    @api.post("/api/run/{rid}/conv")
    async def api_conv(rid: str, request: Request):
        r = entry(rid)
        body = await json_body(request, "{layer, ch, y, x, input}")
        return await answer(r, lambda: conv_step(r, decode_input(body.get("input"), r.run.input_shape),
                                                 str(body.get("layer")), body.get("ch"), body.get("y"), body.get("x")))

    @api.post("/api/run/{rid}/attribution")
    async def api_attribution(rid: str, request: Request):
        r = entry(rid)
        body = await json_body(request, "{input}")
        return await answer(r, lambda: attributions(r, decode_input(body.get("input"), r.run.input_shape)))

    @api.get("/api/run/{rid}/audit")
    def api_audit_status(rid: str):
        return audits.status(entry(rid))

    @api.post("/api/run/{rid}/audit")
    async def api_audit_start(rid: str, request: Request):
        r = entry(rid)
        body = await json_body(request, "{images}")
        return await asyncio.get_running_loop().run_in_executor(None, lambda: audits.start(r, body.get("images")))

    return api
