"""Findings of the independent browser pass (issue #24), each checked in Debian's Chromium against a real
``convscope serve`` of a small LeNet-5 run (its head chain "flatten → fc1 → relu3 → fc2 → relu4 → fc3" is the
long one): a bad ?test_index= shows the server's message, a single tap paints ink, the logits title stays
visible, and the keyboard reaches the confusion cells, the conv maps (Enter drills) and named map links."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.web.conftest import serving
from tests.web.test_browser import stroke, wait_for, wait_update


@pytest.fixture(scope="module")
def lenet_server(tmp_path_factory):
    import convscope

    root = tmp_path_factory.mktemp("lenet_runs")
    convscope.train({"model": "lenet5", "batch_size": 128, "threads": 1, "train_subset": 1000, "epochs": 1},
                    out=root / "lenet", progress=False)
    # "fast": its convs have no bias (batch norm follows)
    convscope.train({"model": "fast", "model_args": {"width": 4}, "batch_size": 128, "threads": 1,
                     "train_subset": 1000, "epochs": 1}, out=root / "nobias", progress=False)
    with serving(root) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(lenet_server, chromium):
    pg = chromium.new_page(viewport={"width": 1280, "height": 900})
    yield pg
    pg.close()


def open_draw(page, base: str, query: str = "") -> None:
    page.goto(f"{base}/run/lenet/draw{query}")
    wait_update(page, 0)


@pytest.mark.parametrize("index", ["99999", "-1", "abc"])
def test_bad_test_index_shows_the_servers_message(lenet_server, page, index):
    open_draw(page, lenet_server.base, f"?test_index={index}")
    status = page.text_content("#status")
    # the server's own words (JSON "error" of /api/run/lenet/test_image/N), not the blank pad's "no ink found"
    assert status.startswith(f"test image {index}: "), status
    assert "no ink found" not in status
    assert page.get_attribute("#draw", "data-state") == "error"
    # the network view is still built under the message, and drawing afterwards goes back to normal
    assert page.locator('.col[data-col="conv1"]').count() == 1


def draw_line(page, a: tuple[float, float], b: tuple[float, float]) -> None:
    """A mouse stroke from ``a`` to ``b`` (fractions of the pad), then wait for the page's answer to it."""
    n = int(page.get_attribute("#draw", "data-updates"))
    stroke(page, [a, b])
    wait_update(page, n)


def ink(page) -> int:
    """White pixels on the 280 x 280 pad (the pad is white ink on black)."""
    return page.evaluate("""() => { const c = document.getElementById('pad');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 128) n++; return n; }""")


def test_a_single_tap_paints_a_dot(lenet_server, page):
    open_draw(page, lenet_server.base)
    assert ink(page) == 0
    box = page.locator("#pad").bounding_box()
    n = int(page.get_attribute("#draw", "data-updates"))
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_update(page, n)
    brush = float(page.input_value("#brush"))
    # a disc of the brush's diameter (lineWidth is in pad pixels): pi r^2 pixels, to antialiasing
    expected = 3.14159 * (brush / 2) ** 2
    assert 0.8 * expected < ink(page) < 1.2 * expected
    assert "no ink found" not in page.text_content("#status")
    assert page.get_attribute("#draw", "data-state") == "predicted"


def test_logits_title_stays_visible_with_a_long_head(lenet_server, page):
    open_draw(page, lenet_server.base)
    head = page.locator('.col[data-col="logits"] .colhead')
    title = head.locator("b")
    hb, tb = head.bounding_box(), title.bounding_box()
    assert title.text_content() == "logits"
    # the bold title lies wholly inside the (overflow: hidden) head box, so it is painted
    assert tb["y"] >= hb["y"] - 0.5 and tb["y"] + tb["height"] <= hb["y"] + hb["height"] + 0.5, (tb, hb)
    assert "flatten → fc1 → relu3 → fc2 → relu4 → fc3" in head.get_attribute("title")


def test_keyboard_reaches_maps_and_drills(lenet_server, page):
    open_draw(page, lenet_server.base)
    draw_line(page, (0.5, 0.143), (0.5, 0.857))
    # every unit link has an accessible name: layer and channel
    names = page.eval_on_selector_all("#layers a", "as => as.map(a => a.getAttribute('aria-label'))")
    assert names and all(x for x in names)
    assert "relu1 channel 0: unit page" in names
    # a conv map is focusable; Enter works out its centre pixel (conv1 is 6 x 28 x 28 -> (14, 14))
    cv = page.locator('.layer[data-layer="conv1"] canvas[data-ch="2"]')
    cv.focus()
    assert page.evaluate("() => document.activeElement.dataset.ch") == "2"
    page.keyboard.press("Enter")
    wait_for(page, "() => document.getElementById('drill').dataset.at === 'conv1/2/14/14'")
    assert page.get_attribute("#drill-value", "data-value")


def test_confusion_cells_open_by_keyboard(lenet_server, page):
    page.goto(f"{lenet_server.base}/run/lenet/training")        # this run's card only
    wait_for(page, "() => document.querySelectorAll('table.confusion td').length === 100", timeout=60)
    # Tab from the top of the page reaches a confusion cell
    page.locator("body").focus()
    for _ in range(200):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.matches('table.confusion td')"):
            break
    else:
        raise AssertionError("Tab never reached a confusion-matrix cell")
    # Enter on the fullest off-diagonal cell lists its images, the count = the cell's number
    t, p, count = page.eval_on_selector_all("table.confusion td", """ts => ts
        .filter(t => t.dataset.true !== t.dataset.pred).map(t => [t.dataset.true, t.dataset.pred, +t.textContent])
        .sort((a, b) => b[2] - a[2])[0]""")
    assert count > 0
    page.locator(f'table.confusion td[data-true="{t}"][data-pred="{p}"]').focus()
    page.keyboard.press("Enter")
    wait_for(page, "() => !!document.querySelector('[id^=gallery-] h3')")
    h3 = page.text_content("[id^=gallery-] h3")
    assert h3.startswith(f"{count} test image{'s' if count != 1 else ''} of {t} predicted as {p}"), h3
    # a 0 cell answers "no test images" rather than nothing
    zeros = page.eval_on_selector_all("table.confusion td", "ts => ts.filter(t => t.textContent === '0')"
                                      ".map(t => [t.dataset.true, t.dataset.pred])")
    assert zeros, "a 1-epoch LeNet-5 leaves some confusion cells empty"
    t, p = zeros[0]
    page.locator(f'table.confusion td[data-true="{t}"][data-pred="{p}"]').click()
    wait_for(page, "() => (document.querySelector('[id^=gallery-] h3') || {}).textContent"
                   "?.startsWith('no test images')")


def test_runs_that_finish_later_or_are_deleted(tmp_path, chromium):
    """Finding 2: a run finishing after the server started gets the background precompute and the progress page
    (before: its unit status said "ready" at once without ever computing, and the first visit blocked).
    Finding 6: a run whose folder is deleted leaves the home page and /training, and its pages answer 404."""
    import httpx

    import convscope

    base = {"model": "fast", "batch_size": 128, "threads": 1, "model_args": {"width": 4}, "epochs": 1}
    convscope.train({**base, "train_subset": 1000}, out=tmp_path / "first", progress=False)
    with serving(tmp_path) as srv:
        wait_ready_log = time.monotonic() + 120
        while httpx.get(f"{srv.base}/api/run/first/units").json().get("state") != "ready":
            assert time.monotonic() < wait_ready_log, "the first run never got ready"
            time.sleep(0.3)
        convscope.train({**base, "train_subset": 1000}, out=tmp_path / "later", progress=False)
        page = chromium.new_page()
        page.goto(f"{srv.base}/run/later/unit/relu1/0")
        # the progress page (the run is queued/computing), which opens the unit page by itself
        assert page.locator("#pending").count() == 1
        page.wait_for_selector("#pending", state="detached", timeout=180_000)   # survives the reload
        page.wait_for_selector(".unitnav", timeout=30_000)   # the unit page itself
        assert page.locator("#pending").count() == 0
        status = httpx.get(f"{srv.base}/api/run/later/units").json()
        # computed by the background thread: its status carries the time it took
        assert status["state"] == "ready" and "seconds" in status, status

        shutil.rmtree(tmp_path / "later")
        time.sleep(0.6)                        # the folders are looked at again at most every 0.5 s
        page.goto(srv.base + "/")
        assert page.locator("a[href='/run/first/draw']").count() > 0
        assert page.locator("a[href='/run/later/draw']").count() == 0
        for path in ("/run/later/draw", "/run/later/unit/relu1/0", "/run/later/training"):
            res = page.goto(srv.base + path)
            assert res.status == 404, path
            assert "later" in page.text_content("body")          # the HTML error page names the run
        page.close()
        live = httpx.get(f"{srv.base}/api/live").json()["runs"]     # what /training lists
        assert [r["id"] for r in live] == ["first"], live


def test_matrix_and_unit_messages_in_our_words(lenet_server, page):
    """Finding 9: the typed value is quoted, fields carry their labels, an invalid value clears the row title,
    and a non-integer channel in a unit address gets our message, not the framework's."""
    page.goto(f"{lenet_server.base}/matrix?run=lenet&layer=conv2&ch=abc&y=0&x=0")
    wait_for(page, "() => document.body.dataset.trained === 'invalid'")
    assert "ch: expected an integer, got 'abc'" in page.text_content("#t-info")
    page.fill("#t-ch", "3")
    wait_for(page, "() => document.body.dataset.trained === 'conv2/3/0/0'")
    # lenet5's conv2: 16 x 10 x 10 outputs, so channel 3 pixel (0, 0) is row 3 * 100 = 300
    assert "row 300 of 1,600" in page.text_content("#t-title")
    page.fill("#t-ch", "16")
    wait_for(page, "() => document.body.dataset.trained === 'invalid'")
    assert "ch: 16 is outside 0..15" in page.text_content("#t-info")
    assert "row" not in page.text_content("#t-title")
    # the symbolic explorer names its fields as labelled
    page.goto(f"{lenet_server.base}/matrix")
    wait_for(page, "() => (document.body.dataset.matrix || '').includes('h=4')")
    page.fill("#m-kw", "9")
    wait_for(page, "() => document.body.dataset.matrix === 'invalid'")
    assert page.text_content("#m-info").startswith("kernel W (kw): 9 is outside 1..7")
    # the keyboard reaches the output cells; focus lights the row like hovering does
    page.locator("#m-kw").fill("3")
    wait_for(page, "() => (document.body.dataset.matrix || '').includes('kw=3')")
    page.locator("#m-out-3").focus()
    wait_for(page, "() => !!document.querySelector('#m-row-3.hl, #m-row-3 .hl')")
    assert page.text_content("#m-hover").strip()
    # opened for a run, the nav leads back to that run's pages (and a plain /matrix has no run links)
    page.goto(f"{lenet_server.base}/matrix?run=lenet&layer=conv2&ch=3&y=0&x=0")
    assert page.locator("nav a[href='/run/lenet/draw']").count() == 1
    assert page.locator("nav a[href='/run/lenet/training']").count() == 1
    page.goto(f"{lenet_server.base}/matrix")
    assert page.locator("nav a[href='/run/lenet/draw']").count() == 0
    res = page.goto(f"{lenet_server.base}/run/lenet/unit/relu2/abc")
    assert res.status == 422
    body = page.text_content("body")
    assert "ch 'abc' in the address: expected a whole number" in body
    assert "Input should" not in body and "path.ch" not in body


def test_back_from_the_matrix_explorer_keeps_the_drawing(lenet_server, page):
    """Finding 7: draw, drill into a conv pixel, follow the matrix link, press Back: pad, prediction and drill
    are as they were."""
    page.goto(f"{lenet_server.base}/run/lenet/draw")
    page.evaluate("() => sessionStorage.clear()")
    open_draw(page, lenet_server.base)
    draw_line(page, (0.357, 0.179), (0.643, 0.821))
    before = {"ink": ink(page), "prediction": page.text_content("#prediction"),
              "input": page.get_attribute("#draw", "data-input-b64")}
    assert before["ink"] > 0 and before["prediction"]
    page.locator('.layer[data-layer="conv2"] canvas[data-ch="3"]').focus()
    page.keyboard.press("Enter")
    wait_for(page, "() => document.getElementById('drill').dataset.at === 'conv2/3/5/5'")
    page.click("#drill-matrix")
    wait_for(page, "() => location.pathname === '/matrix' && document.body.dataset.trained === 'conv2/3/5/5'")
    page.go_back()
    wait_for(page, "() => location.pathname === '/run/lenet/draw'")
    wait_update(page, 0)
    wait_for(page, "() => document.getElementById('drill').dataset.at === 'conv2/3/5/5'")
    assert ink(page) == before["ink"]
    assert page.text_content("#prediction") == before["prediction"]
    assert page.get_attribute("#draw", "data-input-b64") == before["input"]     # the same prepared input
    assert page.is_visible("#drill-value")


def test_phone_width_home_and_training_fit(lenet_server, chromium):
    """Finding 8: at 390 x 844 the runs list and /training fit the screen (no sideways scroll), and the run's
    draw/training links are within it."""
    ctx = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    pg = ctx.new_page()
    try:
        pg.goto(lenet_server.base + "/")
        assert pg.evaluate("() => document.documentElement.scrollWidth") <= 390
        for href in ("/run/lenet/draw", "/run/lenet/training"):
            b = pg.locator(f"a[href='{href}']").last.bounding_box()
            assert b["x"] >= 0 and b["x"] + b["width"] <= 390, (href, b)
        pg.goto(lenet_server.base + "/training")           # both runs' cards
        wait_for(pg, "() => document.querySelectorAll('table.confusion td').length === 200", timeout=60)
        pg.wait_for_timeout(500)
        assert pg.evaluate("() => document.documentElement.scrollWidth") <= 390
    finally:
        ctx.close()


@pytest.mark.parametrize(("rid", "has_bias"), [("lenet", True), ("nobias", False)])
def test_drill_says_no_bias_for_a_bias_free_conv(lenet_server, page, rid, has_bias):
    """Minor finding: a conv without bias says "no bias", not "+ bias +0.0000"; one with bias keeps its term."""
    page.goto(f"{lenet_server.base}/run/{rid}/draw")
    wait_update(page, 0)
    draw_line(page, (0.5, 0.143), (0.5, 0.857))
    page.locator('.layer[data-layer="conv1"] canvas[data-ch="0"]').focus()
    page.keyboard.press("Enter")
    wait_for(page, "() => (document.getElementById('drill').dataset.at || '').startsWith('conv1/0/')")
    eq = page.text_content("#drill-eq")
    assert ("+ bias" in eq) is has_bias and ("no bias" in eq) is (not has_bias), eq
