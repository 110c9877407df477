"""Shared by the serve benchmarks: the main job's run (trained once, kept in bench/.cache), a real
``convscope serve`` process on a free loopback port, drawing updates as the browser sends them, RSS."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw

CACHE = Path(__file__).resolve().parent / ".cache"


def main_job_run() -> Path:
    """`convscope train` with its defaults (fast, width 32, the embedded digits): the main job's model."""
    path = CACHE / "fast-digits"
    if not (path / "model.json").exists():
        import convscope

        CACHE.mkdir(exist_ok=True)
        convscope.train({}, out=path, progress=False)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, threads: int = 1) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "convscope", "serve", str(run), "--port", str(port),
                             "--threads", str(threads)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "MPLBACKEND": "Agg"})
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(base + "/api/runs", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def drawing_frames(n: int = 40, seed: int = 0) -> list[bytes]:
    """PNG frames of a 280 x 280 canvas while a digit is drawn (what draw.js sends on each pointer move)."""
    rng = np.random.default_rng(seed)
    frames = []
    img = Image.new("L", (280, 280))
    d = ImageDraw.Draw(img)
    pts = np.cumsum(rng.normal(0, 12, size=(n, 2)), axis=0) + 140
    for k in range(1, n):
        d.line([tuple(pts[k - 1]), tuple(pts[k])], fill=255, width=22)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        frames.append(buf.getvalue())
    return frames


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")
