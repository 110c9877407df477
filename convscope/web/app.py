"""The FastAPI application behind ``convscope serve``: pages, the JSON API, the run files and the shipped
static assets. Build it with :func:`create_app`; :func:`convscope.web.server.serve` runs it on uvicorn."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ConvscopeError
from . import compute, routes_draw
from .audit_job import AuditJobs
from .runs import RunEntry, discover_runs
from .testset import evaluation
from .units import UnitWork
from .live import LiveIndex
from .routes_live import live_router
from .routes_units import units_router
from .security import GuardMiddleware, WebError, allowed_hosts, decode_image, read_capped, safe_child
from .views import pages
from .views.layout import page

STATIC = Path(__file__).parent / "static"
MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png",
         ".txt": "text/plain; charset=utf-8", ".json": "application/json", ".jpg": "image/jpeg",
         ".svg": "image/svg+xml"}
RUN_FILE_TYPES = {".png", ".json", ".jpg", ".txt"}     # what a run file URL may return (no HTML, no weights)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _invalid_field(err: dict[str, Any]) -> str:
    """One request-validation error in our words: the field as the address or body names it, what was given,
    what it must be (never the framework's "path.ch: Input should be ...")."""
    loc = [str(x) for x in err.get("loc", ()) if x not in ("path", "query", "body")]
    where = {"path": "in the address", "query": "in the address's query", "body": "in the request body"}.get(
        str((err.get("loc") or ("",))[0]), "")
    field = ".".join(loc) or "request"
    kind = str(err.get("type", ""))
    if "missing" in kind:
        return f"{field}: missing {where}; give it".replace("  ", " ")
    want = ("a whole number (such as 0)" if "int" in kind else "a number" if "float" in kind
            else "true or false" if "bool" in kind else "a valid value")
    return f"{field} {err.get('input')!r} {where}: expected {want}"


def wants_html(path: str) -> bool:
    """Whether an error at ``path`` is answered as a page: not for the JSON API, the static assets, run files and
    rendered pictures, which scripts and <img> read (a page there would be read as broken data)."""
    return not (path.startswith(("/api/", "/static/")) or "/file/" in path or path.endswith(".png"))


def create_app(paths: list[Path], host: str = "127.0.0.1", port: int = 8000, extra_hosts: list[str] = (),
               precompute: bool = True) -> FastAPI:
    """The app serving the runs found under ``paths``; requests must name ``host:port`` (or a loopback name).
    ``precompute``: start computing every run's unit pages in a background thread now (web/units.py)."""
    runs = discover_runs([Path(p) for p in paths])
    work = UnitWork(runs).start() if precompute else UnitWork(runs)
    # runs that finish after the start join ``runs`` at the next look (any page that names a run, the home page,
    # the dashboard's polls) and are queued for the background precompute like those found at the start
    live_index = LiveIndex([Path(p) for p in paths], runs, on_new=work.add)
    app = FastAPI(title="convscope", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(GuardMiddleware, hosts=allowed_hosts(host, port, extra_hosts))
    static_files = {p.name: p for p in STATIC.iterdir() if p.is_file() and p.suffix in MEDIA}

    def _answer(request: Request, status: int, message: str) -> Response:
        """JSON for the API and the file routes (scripts read them); an HTML page with navigation elsewhere."""
        path = request.url.path
        if not wants_html(path):
            return _error(status, message)
        rid = path.split("/")[2] if path.startswith("/run/") and len(path.split("/")) > 2 else None
        rid = rid if rid in runs else None
        return HTMLResponse(page(f"error {status}", pages.error_body(status, message, path, rid),
                                 nav=pages.nav_for(rid)), status_code=status)

    @app.exception_handler(WebError)
    async def _web_error(request: Request, exc: WebError):
        return _answer(request, exc.status, exc.message)

    @app.exception_handler(ConvscopeError)
    async def _cs_error(request: Request, exc: ConvscopeError):
        return _answer(request, 400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        msg = {404: f"not found: {request.url.path}", 405: f"method {request.method} not allowed here"}
        return _answer(request, exc.status_code, msg.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return _answer(request, 422, "; ".join(_invalid_field(err) for err in exc.errors()))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        return _answer(request, 500, f"internal error ({type(exc).__name__}); the server's log has the details")

    def entry(rid: str) -> RunEntry:
        live_index.refresh()
        if rid not in runs:
            raise WebError(404, f"no run {rid!r} here; runs: {', '.join(runs) or 'none'}")
        return runs[rid]

    def html(title: str, body: str, rid: str | None = None, scripts: tuple[str, ...] = ()) -> HTMLResponse:
        return HTMLResponse(page(title, body, nav=pages.nav_for(rid), scripts=["common.js", *scripts] if scripts
                                 else []))

    def run_row(r: RunEntry) -> dict[str, Any]:
        try:
            run = r.run
            acc = run.summary.get("test_accuracy")
            return {"id": r.id, "path": str(r.path), "model": run.meta.get("model"), "dataset": run.config.data.dataset,
                    "accuracy": f"{100 * acc:.2f}%" if isinstance(acc, (int, float)) else "–"}
        except ConvscopeError as e:
            return {"id": r.id, "path": str(r.path), "model": "unreadable", "dataset": str(e)[:120], "accuracy": "–"}

    # ---- pages
    @app.get("/", response_class=HTMLResponse)
    def index():
        live_index.refresh()
        return html("runs", pages.index_body([run_row(r) for r in list(runs.values())]))

    @app.get("/run/{rid}/draw", response_class=HTMLResponse)
    def draw_page(rid: str):
        r = entry(rid)
        return html(f"draw · {rid}", pages.draw_body(rid, list(r.run.input_shape)), rid,
                    ("conv.js", "attr.js", "draw.js"))

    @app.get("/matrix", response_class=HTMLResponse)
    def matrix_page(run: str | None = None):
        # opened from a run's drill-down (?run=RID): the nav leads back to that run's Draw and Training pages
        live_index.refresh()
        rid = run if run in runs else None
        return html("conv matrix", pages.matrix_body(), rid, ("matrixrow.js", "matrix.js"))

    # ---- files
    @app.get("/static/{name}")
    def static(name: str):
        if name not in static_files:
            raise WebError(404, f"no static file {name!r}")
        p = static_files[name]
        return Response(p.read_bytes(), media_type=MEDIA[p.suffix], headers={"cache-control": "no-cache"})

    @app.get("/run/{rid}/file/{rel:path}")
    def run_file(rid: str, rel: str):
        r = entry(rid)
        p = safe_child(r.path, rel)
        if p.suffix.lower() not in RUN_FILE_TYPES:
            raise WebError(404, f"no such file: {rel!r} (only PNG, JPEG, JSON and text files are served)")
        return Response(p.read_bytes(), media_type=MEDIA[p.suffix.lower()])

    @app.get("/run/{rid}/confusion.png")
    def confusion_png(rid: str):
        r = entry(rid)

        def render() -> bytes:
            from ..training.report import confusion_png as draw

            res = evaluation(r).result
            res.refuse_non_finite(str(r.path))
            with tempfile.TemporaryDirectory() as tmp:
                return draw(res, r.run.classes, Path(tmp) / "c.png").read_bytes()
        return Response(r.cached("confusion.png", render), media_type="image/png")

    # ---- JSON API
    @app.get("/api/runs")
    def api_runs():
        return {"runs": [run_row(r) for r in list(runs.values())]}

    @app.get("/api/run/{rid}/layers")
    def api_layers(rid: str):
        return {"layers": compute.shown_layers(entry(rid))}

    @app.post("/api/run/{rid}/predict")
    async def api_predict(rid: str, request: Request):
        r = entry(rid)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not ctype.startswith("image/"):
            raise WebError(415, f"Content-Type {ctype or 'missing'!r}: send the image itself as the body "
                                "(image/png or image/jpeg)")
        data = await read_capped(request)

        def work() -> dict[str, Any]:
            return compute.predict_picture(r, decode_image(data),
                                           with_norm=request.query_params.get("norm") == "1").to_dict()
        result = await asyncio.get_running_loop().run_in_executor(r.worker, work)
        return Response(json.dumps(result), media_type="application/json")   # plain data: no re-encoding pass

    @app.get("/api/run/{rid}/unit/{layer}/{ch}")
    def api_unit(rid: str, layer: str, ch: int):
        return compute.unit_data(entry(rid), layer, ch).to_dict()

    @app.get("/api/run/{rid}/training")
    def api_training(rid: str):
        return compute.training_data(entry(rid)).to_dict()

    @app.get("/api/training")
    def api_training_all():
        out = []
        for r in list(runs.values()):
            try:
                run = r.run
                out.append({"id": r.id, "epochs": [m for m in run.metrics if m.get("kind") == "epoch"]})
            except ConvscopeError as e:
                out.append({"id": r.id, "error": str(e), "epochs": []})
        return {"runs": out}

    @app.get("/api/matrix")
    def api_matrix(request: Request):
        return compute.matrix_data(dict(request.query_params)).to_dict()

    app.include_router(live_router(live_index))
    app.include_router(units_router(runs, work, live_index.refresh))
    audits = AuditJobs(runs)
    app.router.on_shutdown.append(work.stop)     # the background threads end before the interpreter does
    app.router.on_shutdown.append(audits.stop)   # (work.stop tells every background forward to end)
    app.include_router(routes_draw.router(entry, audits))
    app.state.runs = runs
    return app
