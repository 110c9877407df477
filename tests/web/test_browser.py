"""The pages in Debian's Chromium (Playwright for Python), against a real ``convscope serve`` process:
drawing changes the prediction to the drawn digit, every layer's maps appear, a map opens its unit, the
matrix explorer highlights the right row and input pixels, no console error, no request leaves 127.0.0.1."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from PIL import Image

from convscope.conv import conv_matrix

SHOTS = Path(os.environ.get("CONVSCOPE_SCREENSHOTS", "")) if os.environ.get("CONVSCOPE_SCREENSHOTS") else None


def shot(page, name: str) -> None:
    if SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / name))


def wait_for(page, js: str, timeout: float = 20.0) -> None:
    """Poll ``js`` from outside the page (wait_for_function would eval inside it, which the CSP forbids)."""
    end = time.monotonic() + timeout
    while not page.evaluate(js):
        if time.monotonic() > end:
            raise TimeoutError(js)
        page.wait_for_timeout(50)


def wait_update(page, after: int) -> int:
    """Wait until the page has rendered a response newer than ``after`` and nothing is queued any more."""
    wait_for(page, f"() => +(document.getElementById('draw').dataset.updates || 0) > {after}")
    page.wait_for_timeout(500)     # the last queued drawing lands (one request in flight, latest wins)
    wait_for(page, "() => document.getElementById('draw').dataset.busy !== '1'")
    return int(page.get_attribute("#draw", "data-updates"))


def stroke(page, points: list[tuple[float, float]]) -> None:
    """Mouse events along ``points`` (fractions of the 280 x 280 pad)."""
    box = page.locator("#pad").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for p in xy[1:]:
        page.mouse.move(*p, steps=3)
    page.mouse.up()


def test_draw_predicts_the_digit_and_shows_every_layer(server, browser_page, tmp_path):
    page, _log = browser_page
    page.goto(server.base + "/run/digits8/draw")
    n = wait_update(page, 0)
    # a zero: an ellipse
    t = np.linspace(0, 2 * np.pi, 40)
    stroke(page, list(zip(0.5 + 0.2 * np.sin(t), 0.5 - 0.3 * np.cos(t))))
    n = wait_update(page, n)
    assert page.text_content("#prediction") == "0"
    page.click("#clear")
    n = wait_update(page, n)
    stroke(page, [(0.5, 0.18 + 0.64 * k / 20) for k in range(21)])     # a vertical stroke
    n = wait_update(page, n)
    assert page.text_content("#prediction") == "1"
    probs = [float(v.rstrip("%")) for v in page.locator("#probs .val").all_text_contents()]
    assert np.argmax(probs) == 1 and abs(sum(probs) - 100) < 1
    # every layer's maps: as many canvases as channels, painted (not uniform) for the first conv
    for name, channels in [("conv1", 8), ("relu1", 8), ("pool1", 8), ("conv2", 16), ("relu3", 32), ("pool3", 32)]:
        assert page.locator(f'.layer[data-layer="{name}"] canvas').count() == channels
    spread = page.evaluate("""() => { const c = document.querySelector('.layer[data-layer="conv1"] canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let lo = 255, hi = 0;
        for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }
        return hi - lo; }""")
    assert spread > 50
    shot(page, "serve-draw.png")
    # an uploaded picture: a test-set 7, dark ink on white paper at 4x size (inverted and fitted by the server)
    page.set_input_files("#upload", str(seven_png(tmp_path)))
    n = wait_update(page, n)
    assert page.text_content("#prediction") == "7"
    page.click('.layer[data-layer="relu2"] a >> nth=3')                  # a map opens its unit
    page.wait_for_selector("img.patch")          # at once, or after the background precomputation's progress page
    assert "relu2 · channel 3" in page.text_content("h1.unit-title")
    assert page.locator("img.patch").count() == 9 and page.locator("img.tile").count() == 8
    assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    page.goto(server.base + "/run/digits8/unit/relu1/0")
    assert page.locator('a[href="/run/digits8/file/inspect/visualize-relu1.png"]').count() == 1   # the CLI's strip


def seven_png(tmp_path: Path) -> Path:
    """A test-set 7 as a user would upload it: dark ink on white paper at 4x size (the server inverts and fits)."""
    from convscope.data import load

    test = load("digits", "test")
    seven = int((test.labels == 7).nonzero()[0, 0])
    big = np.kron(255 - test.images[seven, 0].numpy(), np.ones((4, 4), np.uint8))
    path = tmp_path / "seven.png"
    Image.fromarray(big).save(path)
    return path


def test_an_upload_is_not_overwritten_by_a_drawings_late_answer(server, browser_page, tmp_path):
    """A slow server answers a stroke after the user has uploaded a picture: the stroke's late answer (and the
    strokes queued behind it) must not replace the upload's. The stroke's requests are held in the browser until
    the upload has been answered, then let through."""
    page, _log = browser_page
    page.goto(server.base + "/run/digits8/draw")
    n = wait_update(page, 0)
    held, holding = [], [True]
    page.route("**/predict*", lambda route: held.append(route) if holding[0] else route.continue_())
    try:
        stroke(page, [(0.5, 0.18 + 0.64 * k / 20) for k in range(21)])     # a "1", answered late
        wait_for(page, "() => document.getElementById('draw').dataset.busy === '1'")
        assert held, "the stroke's request should be waiting"
        holding[0] = False
        page.set_input_files("#upload", str(seven_png(tmp_path)))
        wait_for(page, f"() => +(document.getElementById('draw').dataset.updates || 0) > {n}")
        assert page.text_content("#prediction") == "7"
        for route in held:
            route.continue_()
        page.wait_for_timeout(500)
        wait_for(page, "() => document.getElementById('draw').dataset.busy === '0'")
        page.wait_for_timeout(300)
        assert page.text_content("#prediction") == "7"
    finally:
        page.unroute("**/predict*")


def test_matrix_explorer_highlights_row_and_inputs(server, browser_page):
    page, _log = browser_page
    page.goto(server.base + "/matrix")
    page.wait_for_selector("#m-out-3")
    # the reference: the nonzero columns of each row of the 4x4 * 3x3 matrix (taps numbered 1..9)
    m = conv_matrix(torch.arange(1.0, 10.0).reshape(1, 1, 3, 3), (1, 4, 4)).toarray()
    assert m.shape == (4, 16) and page.locator("#m-matrix tr[data-row]").count() == 4
    for r in range(4):
        page.hover(f"#m-out-{r}")
        assert "hl" in page.get_attribute(f"#m-row-{r}", "class")
        lit = page.eval_on_selector_all("#m-input .cell.hl", "els => els.map(e => +e.dataset.idx)")
        assert sorted(lit) == np.flatnonzero(m[r]).tolist()
        others = [k for k in range(4) if k != r]
        assert all("hl" not in (page.get_attribute(f"#m-row-{k}", "class") or "") for k in others)
    shot(page, "serve-matrix.png")
    page.hover("#m-cell-1-5")                                    # row 1, input pixel (1, 1): weight w21 (tap 4)
    assert int(m[1, 5]) == 4 and "holds w21" in page.text_content("#m-hover")
    assert page.eval_on_selector_all("#m-kernel .cell.hl", "els => els.map(e => e.textContent)") == ["w21"]
    page.hover("#m-cell-0-15")
    assert "0: this output does not read" in page.text_content("#m-hover")
    # stride 2, padding 1 on 5x5: the explorer follows the geometry
    page.fill("#m-h", "5")
    page.fill("#m-w", "5")
    page.fill("#m-stride", "2")
    page.fill("#m-padding", "1")
    wait_for(page, "() => ['stride=2', 'padding=1', 'w=5', 'h=5'].every(k => "
                   "(document.body.dataset.matrix || '').split('&').includes(k))")
    m2 = conv_matrix(torch.arange(1.0, 10.0).reshape(1, 1, 3, 3), (1, 5, 5), stride=2, padding=1).toarray()
    assert page.locator("#m-matrix tr[data-row]").count() == m2.shape[0] == 9
    page.hover("#m-out-4")
    lit = page.eval_on_selector_all("#m-input .cell.hl", "els => els.map(e => +e.dataset.idx)")
    assert sorted(lit) == np.flatnonzero(m2[4]).tolist()


def test_training_page_and_no_errors_or_outside_requests(server, browser_page):
    page, log = browser_page
    page.goto(server.base + "/training")
    wait_for(page, "() => document.querySelectorAll('section.run table.confusion').length === 2")
    assert page.locator("#chart-loss path.series").count() == 4       # per run: raw and smoothed
    assert page.locator("#chart-acc path.series").count() == 4        # per run: test and train
    assert page.locator("section.run").count() == 2
    page.goto(server.base + "/")
    assert page.locator("table.runs tbody tr").count() == 2
    assert log["errors"] == []
    outside = [u for u in log["requests"] if not u.startswith("data:") and urlparse(u).hostname != "127.0.0.1"]
    assert outside == [] and len(log["requests"]) > 10
