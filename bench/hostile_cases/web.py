"""The web side: `report` (-o, --layer, broken runs, files linked out of the run) and `serve` (host, port)."""

from __future__ import annotations

from pathlib import Path

from ._table import Table, _cli


def _report_at(rel: str):
    def check(rc, out, err, ws):
        if rc != 0:
            return None
        p = ws / "_o" / rel
        if not p.is_file() or "<html" not in p.read_text(errors="replace")[:2000].lower():
            return "wrong result", f"exit 0 but no HTML at {rel}"
        return "correct", ""
    return check


def _report_secret(rc, out, err, ws):
    import base64

    from hostile_workspace import SECRET
    html = list((ws / "runs_bad2" / "curve_outside").glob("*.html")) + list((ws / "_o").glob("rep-secret*"))
    if any(base64.b64encode(SECRET).decode() in p.read_text(errors="replace") for p in html):
        return "loss", "curve.png, a symlink out of the run, was read and embedded in the report"
    return None


STUB_UVICORN = ("import uvicorn\n"
                "uvicorn.Server.run = lambda self, *a, **k: print('uvicorn.Server.run stubbed: STARTED')\n")


CHECKS = {
    "report_secret": _report_secret,
    "report ok": _report_at("rep-ok.html"),
    "report into dir": _report_at("rep-dir/report.html"),
}


def add_cases(t: Table) -> None:
    """Every case of this unit, in the table's order."""
    _report(t)
    _serve(t)


def _report(t: Table) -> None:
    """`report`."""
    ws, cli, out, run, im, B2, slow, stuck = t.ws, t.cli, t.out, t.run, t.images, t.bad_runs2, t.slow, t.stuck
    rep = ["report", run]
    cli("web", "report -o /proc", [*rep, "-o", "/proc/forbidden.html"], timeout=slow)
    cli("web", "report -o an existing directory", [*rep, "-o", f"{out}/rep-dir"], timeout=slow,
        check="report into dir")
    for flags in (["--layer", "bogus"], ["--layer", "fc"], ["--layer", "ReLU"], ["--layer", " "],
                  ["--filter", "bogus"]):
        cli("web", "report " + " ".join(flags), [*rep, "-o", f"{out}/rep-x.html", *flags], timeout=slow)
    cli("web", "report --layer 3 (a 0.1 name)", [*rep, "-o", f"{out}/rep-x.html", "--layer", "3"], check="hint",
        timeout=slow)
    for bad in ("/nonexistent", str(im / "ok.png"), *(str(ws / "runs_bad" / n) for n in (
            "meta_missing", "weights_pickle", "weights_truncated", "summary_list", "meta_fifo")),
            *(str(B2 / n) for n in ("weights_missing", "metrics_garbage", "metrics_list", "metrics_nokeys",
                                    "metrics_fifo", "summary_fifo", "curve_fifo"))):
        cli("web", f"report run:{Path(bad).name}", ["report", bad, "-o", f"{out}/rep-bad.html"], timeout=stuck,
            expect="ok" if bad.endswith("curve_fifo") else "error")   # no curve: the report without it
    cli("web", "report curve.png symlinked out of the run", ["report", B2 / "curve_outside", "-o",
                                                             f"{out}/rep-secret.html"], check="report_secret",
        timeout=slow, expect="ok")
    cli("web", "report (sanity)", [*rep, "-o", f"{out}/rep-ok.html"], expect="ok", check="report ok", timeout=slow)


def _serve(t: Table) -> None:
    """`serve`: argument checks (uvicorn's Server.run stubbed: a serve that would start prints
    STARTED, exit 0), and real binds that must fail at once."""
    ws, cli, py, run, im, stuck = t.ws, t.cli, t.py, t.run, t.images, t.stuck
    for flags in (["--port", "-1"], ["--port", "70000"], ["--port", "abc"], ["--port", "1.5"], ["--port", "0"],
                  ["--host", "not-an-address"], ["--host", ""], ["--threads", "0"], ["--threads", "-1"]):
        py("web", "serve " + " ".join(flags), _cli(["serve", run, *flags], STUB_UVICORN), timeout=stuck)
    for target in ("/nonexistent", str(im / "ok.png"), str(ws / "configs" / "fifo.yaml"),
                   str(ws / "folders" / "empty"), str(ws / "runs_bad" / "meta_missing")):
        py("web", f"serve {Path(target).name}", _cli(["serve", target, "--port", "18765"], STUB_UVICORN),
           timeout=stuck)
    py("web", "serve run (sanity, stubbed)", _cli(["serve", run, "--port", "18765"], STUB_UVICORN), expect="ok",
       timeout=stuck)
    # real binds that must fail at once (nothing is left running: a server that starts is killed at the timeout)
    for host in ("not-an-address", "999.1.1.1"):
        cli("web", f"serve --host {host} --allow-remote (real bind)", ["serve", run, "--host", host, "--allow-remote",
                                                                       "--port", "18765"], timeout=stuck)
    py("web", "serve --port in use (real bind)",
       "import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\nport = s.getsockname()[1]\n"
       + _cli(["serve", run, "--port", "PORT"]).replace("'PORT'", "str(port)"), timeout=stuck)
