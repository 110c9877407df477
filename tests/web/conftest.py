"""Shared fixtures of the web tests: a quickly trained run (a vertical stroke is a "1" for it), a folder of
runs, a real ``convscope serve`` process on a free loopback port, always terminated at the end, and Debian's
Chromium driven by Playwright, launched the one way the project allows."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = "/usr/bin/chromium"
# headless, no sandbox (containers), and no traffic of the browser's own: every request a test sees is the page's
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    """runs/digits8 (fast, width 8, 4,000 digits, 3 epochs: ~96% test accuracy) and runs/digits4 (1 epoch)."""
    import convscope

    root = tmp_path_factory.mktemp("web_runs")
    base = {"model": "fast", "batch_size": 128, "threads": 1}
    convscope.train({**base, "model_args": {"width": 8}, "train_subset": 4000, "epochs": 3}, out=root / "digits8",
                    progress=False)
    convscope.train({**base, "model_args": {"width": 4}, "train_subset": 1000, "epochs": 1}, out=root / "digits4",
                    progress=False)
    # a feature visualization "computed elsewhere", and links that lead outside the run (must never be served)
    inspect = root / "digits8" / "inspect"
    inspect.mkdir(exist_ok=True)
    shutil.copy(root / "digits8" / "curve.png", inspect / "visualize-relu1.png")
    secret = root / "secret.png"
    secret.write_bytes(b"SECRET-OUTSIDE-THE-RUN")
    (root / "digits8" / "link.png").symlink_to(secret)
    outside = root / "outside"
    outside.mkdir()
    (outside / "x.png").write_bytes(b"SECRET-OUTSIDE-THE-RUN")
    (root / "digits8" / "linkdir").symlink_to(outside, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def web_run(runs_dir) -> Path:
    return runs_dir / "digits8"


class Server:
    def __init__(self, args: list[str], port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "convscope", "serve", *args, "--port", str(port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "MPLBACKEND": "Agg"})

    def wait_ready(self, timeout: float = 180.0) -> None:   # a loaded 2-core machine starts a server slowly
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                if httpx.get(self.base + "/api/runs", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise TimeoutError("server did not start")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        return self.proc.returncode


@contextmanager
def serving(*roots: Path | str) -> Iterator[Server]:
    """A real `convscope serve` over ROOTS on a free port, ready on entry, stopped on exit."""
    srv = Server([str(r) for r in roots], free_port())
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def server(runs_dir):
    with serving(runs_dir) as srv:
        yield srv


@contextmanager
def chromium_browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright, closed on exit. One at a time per thread: a second sync_playwright
    opened while one is live would meet the first one's event loop."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One Chromium for a test module."""
    with chromium_browser() as browser:
        yield browser


@pytest.fixture(scope="module")
def browser_page(server, chromium):
    """A 1280 x 900 page on the module's Chromium, with the log of its console errors, page errors and requests
    ({"errors": [...], "requests": [...]}); the session's server runs (the page opens it or another)."""
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    log = {"errors": [], "requests": []}
    page.on("console", lambda m: log["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: log["errors"].append(str(e)))
    page.on("request", lambda r: log["requests"].append(r.url))
    try:
        yield page, log
    finally:
        page.close()


@pytest.fixture()
def page_at(chromium):
    """A fresh page of the given viewport; console errors and page errors fail the test (but those containing
    one of ``allow``: the browser logs each 400 answer the test provokes)."""
    pages, errors = [], []

    def make(width: int = 1366, height: int = 900, allow: tuple[str, ...] = ()):
        pg = chromium.new_page(viewport={"width": width, "height": height})
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and not any(a in m.text for a in allow)
              else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pages.append(pg)
        return pg
    yield make
    for pg in pages:
        pg.close()
    assert errors == []
