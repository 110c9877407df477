"""Hardening of ``convscope serve``, against the real server process: loopback binding, path traversal in
every encoding, symlinks, upload and decompression-bomb limits, Host/Origin checks, CSP, JSON errors."""

from __future__ import annotations

import io
import json
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from .conftest import Server, free_port

SECRET = b"SECRET-OUTSIDE-THE-RUN"


def raw_get(port: int, path: str, host: str | None = None) -> tuple[int, bytes, str]:
    """A GET with the path sent byte for byte (HTTP clients normalise '..' and re-encode)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body, head.decode("latin-1").lower()


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(side: int) -> bytes:
    """A PNG whose header announces side x side pixels, a few hundred bytes long."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND",
                                                                                                             b"")


def test_binds_loopback_only(server):
    # the listening socket's local address in /proc/net/tcp: 0100007F = 127.0.0.1
    port_hex = f"{server.port:04X}"
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    listening = [r[1] for r in rows if r[3] == "0A" and r[1].endswith(":" + port_hex)]
    assert listening == ["0100007F:" + port_hex]


def test_serves_on_one_torch_thread_by_default(server):
    """serve's documented default (--threads 1: one forward at a time per run), said on its first line; the
    count goes through convscope.training.threads like every other command's."""
    line = server.proc.stdout.readline()
    assert line.startswith("convscope: serving ") and "(1 torch thread; Ctrl-C stops)" in line, line


def test_remote_host_needs_flag(runs_dir):
    cmd = [sys.executable, "-m", "convscope", "serve", str(runs_dir), "--host", "0.0.0.0", "--port", str(free_port())]
    refused = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--allow-remote" in refused.stderr


def test_remote_warning_printed(runs_dir):
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "convscope", "serve", str(runs_dir), "--host", "0.0.0.0",
                          "--allow-remote", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        line = p.stderr.readline()
        assert line.startswith("WARNING") and "no authentication" in line
    finally:
        p.terminate()
        p.wait(15)
        p.stdout.close()
        p.stderr.close()


def test_run_files_served_and_traversal_refused(server):
    status, body, head = raw_get(server.port, "/run/digits8/file/curve.png")
    assert status == 200 and body.startswith(b"\x89PNG") and "content-type: image/png" in head
    assert raw_get(server.port, "/run/digits8/file/model.safetensors")[0] == 404     # weights are not pictures
    attacks = [
        "/run/digits8/file/../secret.png", "/run/digits8/file/%2e%2e/secret.png", "/run/digits8/file/..%2fsecret.png",
        "/run/digits8/file/%2e%2e%2fsecret.png", "/run/digits8/file/%252e%252e%252fsecret.png",
        "/run/digits8/file/%252e%252e/secret.png", "/run/digits8/file//etc/passwd", "/run/digits8/file/%2fetc%2fpasswd",
        "/run/digits8/file/inspect/../../secret.png", "/run/digits8/file/..\\secret.png",
        "/run/digits8/file/link.png", "/run/digits8/file/linkdir/x.png", "/run/digits8/file/%2e%2e%5csecret.png",
        "/run/..%2f..%2fetc/file/passwd", "/static/..%2f..%2fsecurity.py", "/static/%2e%2e/app.py",
        "/run/digits8/file/inspect%2f..%2f..%2fsecret.png", "/run/digits8/file/.%2e/secret.png",
        "/run/digits8/file/%00../secret.png",
    ]
    for path in attacks:
        status, body, head = raw_get(server.port, path)
        assert status in (400, 403, 404), (path, status)
        assert SECRET not in body and b"root:" not in body, path
        if status != 400:      # 400 may come from the HTTP parser itself for malformed request lines
            assert "application/json" in head and "error" in json.loads(body), path


def test_upload_caps_and_bombs(server):
    url = server.base + "/api/run/digits8/predict"
    big = httpx.post(url, content=b"\0" * (3 * 1024 * 1024), headers={"content-type": "image/png"}, timeout=30)
    assert big.status_code == 413 and "limit" in big.json()["error"]

    def chunks():                                  # no Content-Length: the cap applies while streaming
        for _ in range(40):
            yield b"\0" * 65536
    streamed = httpx.post(url, content=chunks(), headers={"content-type": "image/png"}, timeout=30)
    assert streamed.status_code == 413
    bomb = httpx.post(url, content=bomb_png(50_000), headers={"content-type": "image/png"}, timeout=30)
    assert bomb.status_code == 413 and "decompression bomb" in bomb.json()["error"]
    garbage = httpx.post(url, content=b"not an image at all", headers={"content-type": "image/png"}, timeout=30)
    assert garbage.status_code == 400 and "not a readable image" in garbage.json()["error"]
    plain = httpx.post(url, content=png(np.zeros((28, 28), np.uint8)), headers={"content-type": "text/plain"})
    assert plain.status_code == 415          # what a cross-site <form> could send is refused


def test_host_and_origin_checks(server):
    ok = png(np.zeros((280, 280), np.uint8))
    url = server.base + "/api/run/digits8/predict"
    status, body, _ = raw_get(server.port, "/", host=f"evil.example:{server.port}")
    assert status == 403 and b"DNS-rebinding" in body
    assert raw_get(server.port, "/", host=f"localhost:{server.port}")[0] == 200
    assert raw_get(server.port, "/", host=f"127.0.0.1:{server.port + 1}")[0] == 403
    hdr = {"content-type": "image/png"}
    evil = httpx.post(url, content=ok, headers={**hdr, "origin": "http://evil.example"})
    assert evil.status_code == 403 and "cross-site" in evil.json()["error"]
    rebound = httpx.post(url, content=ok, headers={**hdr, "origin": f"http://evil.example:{server.port}"})
    assert rebound.status_code == 403
    fetch_meta = httpx.post(url, content=ok, headers={**hdr, "sec-fetch-site": "cross-site"})
    assert fetch_meta.status_code == 403
    same = httpx.post(url, content=ok, headers={**hdr, "origin": server.base, "sec-fetch-site": "same-origin"})
    assert same.status_code == 200 and len(same.json()["probabilities"]) == 10


def test_headers_and_json_errors(server):
    page = httpx.get(server.base + "/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    cases = [("/api/run/nope/layers", 404, "no run 'nope'"), ("/api/run/digits8/unit/conv1/99", 400, "channels 0..7"),
             ("/api/run/digits8/unit/fc/0", 400, "not a feature-map layer"), ("/api/run/digits8/unit/conv1/x", 422,
                                                                              "ch"),
             ("/api/matrix?h=99", 400, "input H (h): 99 is outside"), ("/api/matrix?kh=5&h=3", 400, "kernel"),
             ("/api/no/such/thing", 404, "not found"), ("/run/digits8/file/nope.png", 404, "nope.png")]
    for path, status, text in cases:
        r = httpx.get(server.base + path)
        assert r.status_code == status, path
        assert r.headers["content-type"] == "application/json" and text in r.json()["error"], (path, r.text)
        assert "Traceback" not in r.text and "content-security-policy" in r.headers
    r = httpx.put(server.base + "/api/matrix")
    assert r.status_code == 405 and "error" in r.json()


def test_ctrl_c_stops_cleanly(runs_dir):
    srv = Server([str(runs_dir / "digits4")], free_port())
    srv.wait_ready()
    t = time.monotonic()
    rc = srv.stop()                                  # SIGINT, as Ctrl-C
    assert time.monotonic() - t < 10 and rc in (0, 130)
    with socket.socket() as s:                       # the port is free again
        s.bind(("127.0.0.1", srv.port))
