"""Uploads through the real server read as `predict` reads the same file (issue 22: black ink on a transparent
background was composited on black and answered "1"), and a client that goes away mid-upload leaves no
traceback in the server's log."""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from convscope.data import load
from convscope.data.prepare import default_mode, prepare_image
from convscope.training import load_run

from .conftest import Server, free_port


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def ink_files(web_run, tmp_path_factory):
    """A real test digit the run classifies right, as black ink on white paper (opaque) and as the same black
    ink on a transparent layer (what drawing apps export)."""
    run = load_run(web_run)
    test = load("digits", "test")
    for i in range(50):
        d = test.images[i, 0].numpy()                                      # (28, 28) light strokes on black
        big = np.asarray(Image.fromarray(d).resize((112, 112), Image.BILINEAR))
        opaque = Image.fromarray(255 - big)                                # dark ink on white, mode L
        x = prepare_image(opaque, run.input_shape, mode=default_mode(run.meta)).tensor[None]
        with torch.no_grad():
            if int(run.logits(run.preprocess(x)).argmax()) == int(test.labels[i]):
                break
    label = run.classes[int(test.labels[i])]
    rgba = np.zeros((112, 112, 4), np.uint8)                               # black everywhere, ink = alpha
    rgba[..., 3] = big
    folder = tmp_path_factory.mktemp("ink")
    opaque.save(folder / "opaque.png")
    Image.fromarray(rgba, "RGBA").save(folder / "transparent.png")
    return folder, label


def _predict_cli(run_path, path) -> str:
    r = subprocess.run([sys.executable, "-m", "convscope", "predict", str(run_path), str(path), "--top", "1"],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_transparent_upload_answers_as_the_opaque_file_and_as_predict(server, web_run, ink_files):
    folder, label = ink_files
    url = server.base + "/api/run/digits8/predict"
    answers = {}
    for name in ("opaque", "transparent"):
        data = (folder / f"{name}.png").read_bytes()
        r = httpx.post(url, content=data, headers={"content-type": "image/png"}, timeout=60)
        assert r.status_code == 200, r.text
        answers[name] = r.json()
    assert answers["opaque"]["prediction"] == answers["transparent"]["prediction"] == label
    assert answers["opaque"]["input"] == answers["transparent"]["input"]          # the very same model input
    assert max(answers["transparent"]["probabilities"]) > 0.5
    # predict on the same files says the same (before: the server said "1", predict the digit)
    for name in ("opaque", "transparent"):
        out = _predict_cli(web_run, folder / f"{name}.png")
        assert out.startswith(f"{folder / name}.png: {label} "), out              # "PATH: 7 99.1%"
    assert "composited the transparent background on white" in out


def test_transparent_file_prepares_like_the_opaque_one(web_run, ink_files):
    folder, _ = ink_files
    run = load_run(web_run)
    for mode in ("mnist", "none"):
        a = prepare_image(folder / "opaque.png", run.input_shape, mode=mode)
        b = prepare_image(folder / "transparent.png", run.input_shape, mode=mode)
        assert torch.equal(a.tensor, b.tensor), mode
        assert any("composited the transparent background on white" in n for n in b.notes)


def _send_partial(port: int, headers: str, body: bytes) -> None:
    """A raw HTTP request whose body stops short of its Content-Length, then the connection is dropped."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(headers.encode("latin-1") + body)
        time.sleep(0.3)                       # the server is now reading the body
        s.shutdown(socket.SHUT_RDWR)


def test_client_disconnecting_mid_upload_leaves_no_traceback(runs_dir, ink_files):
    folder, _ = ink_files
    png = (folder / "opaque.png").read_bytes()
    srv = Server([str(runs_dir)], free_port())
    try:
        srv.wait_ready()
        host = f"127.0.0.1:{srv.port}"
        for ctype, body in (("image/png", png[: len(png) // 2]),
                            ("multipart/form-data; boundary=XyZ",
                             b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.png\"\r\n"
                             b"Content-Type: image/png\r\n\r\n" + png[:100])):
            head = (f"POST /api/run/digits8/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body) + 5000}\r\n\r\n")
            _send_partial(srv.port, head, body)
        time.sleep(1.0)
        ok = httpx.post(srv.base + "/api/run/digits8/predict", content=png, headers={"content-type": "image/png"},
                        timeout=60)
        assert ok.status_code == 200                       # still serving
    finally:
        if srv.proc.poll() is None:
            srv.proc.send_signal(signal.SIGINT)
        try:
            _, log = srv.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            srv.proc.kill()
            _, log = srv.proc.communicate(timeout=5)
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log
    assert "ClientDisconnect" not in log, log


def test_uploads_take_the_formats_predict_reads(server, ink_files):
    """One image path: an upload in a format `predict` refuses (GIF, BMP, WebP) is refused too, whatever the
    Content-Type claims; PNG and JPEG are read."""
    folder, label = ink_files
    img = Image.open(folder / "opaque.png")
    url = server.base + "/api/run/digits8/predict"
    for fmt, ctype in (("GIF", "image/gif"), ("BMP", "image/bmp"), ("BMP", "image/png"), ("WEBP", "image/webp")):
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        r = httpx.post(url, content=buf.getvalue(), headers={"content-type": ctype}, timeout=60)
        assert r.status_code == 415 and f"is a {fmt} image" in r.json()["error"], (fmt, r.text)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    r = httpx.post(url, content=buf.getvalue(), headers={"content-type": "image/jpeg"}, timeout=60)
    assert r.status_code == 200 and r.json()["prediction"] == label


def test_a_blank_upload_is_answered_as_no_ink(server, web_run, tmp_path):
    """`predict` refuses a blank file ("no ink found"); the page shows the maps of the empty input (an empty
    canvas is how it starts) but the answer says no ink was found, so no digit is named."""
    url = server.base + "/api/run/digits8/predict"
    blank = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    r = httpx.post(url, content=_png(blank), headers={"content-type": "image/png"}, timeout=60)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["no_ink"] is True and any("no ink found" in n for n in data["notes"])
    assert not any("try --prepare mnist" in n for n in data["notes"])    # mnist preparation already ran
    blank.save(tmp_path / "blank.png")
    p = subprocess.run([sys.executable, "-m", "convscope", "predict", str(web_run), str(tmp_path / "blank.png")],
                       capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 2 and "no ink found" in p.stderr
    stroke = Image.fromarray(np.pad(np.full((20, 4), 255, np.uint8), 22))     # a vertical stroke: ink
    drawn = httpx.post(url, content=_png(stroke), headers={"content-type": "image/png"}, timeout=60).json()
    assert drawn["no_ink"] is False and drawn["notes"]
