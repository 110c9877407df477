"""Hostile image files given to predict (image_to_input, open_image and the CLI): FIFOs and decompression
bombs end in a clear error within a time and memory bound; a real PNG reads as its pixels."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from convscope.errors import DataError

from .conftest import outcome, png_header_only

MB = 1 << 20


def test_predict_fifo_and_bomb_give_messages(tmp_path, fifo):
    from convscope.data.prepare import prepare_image

    def image_to_input(path, shape):                   # what predict runs on each file
        return prepare_image(path, shape, mode="none")

    assert "FIFO" in str(outcome(lambda: image_to_input(fifo, (1, 28, 28)), seconds=5))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(30_000, 30_000))  # 900 M pixels declared: Pillow raised DecompressionBombError
    err = outcome(lambda: image_to_input(bomb, (1, 28, 28)), seconds=5, max_bytes=16 * MB)
    assert isinstance(err, DataError) and "decompression bomb" in str(err)
    mid = tmp_path / "mid.png"
    mid.write_bytes(png_header_only(10_000, 10_000))  # 100 M pixels: only a warning before, then decoded
    err = outcome(lambda: image_to_input(mid, (1, 28, 28)), seconds=5, max_bytes=16 * MB)
    assert isinstance(err, DataError)


def test_open_image_reads_a_real_png(tmp_path):
    from convscope.data.image import open_image

    p = tmp_path / "x.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(p)
    with open_image(p) as img:
        assert np.asarray(img).tolist() == np.arange(64).reshape(8, 8).tolist()


def test_predict_cli_on_fifo_does_not_hang(tmp_path, fifo):
    # predict's run is checked after the image in no order we rely on; a missing run is also a clean error
    r = subprocess.run([sys.executable, "-m", "convscope", "predict", str(tmp_path / "norun"), str(fifo)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
