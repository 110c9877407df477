"""Unit pages: the background precomputation gives exactly what the per-layer library calls give; a unit page
asked for before it is ready shows progress and then opens by itself; this unit's own feature visualization
and projections are computed with a button, and the visualization's value is the model's activation of the
image shown (checked with a plain forward)."""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import torch
from PIL import Image
from playwright.sync_api import Error as PlaywrightError

from convscope.inspect import activation_sparsity, capture, topk
from convscope.web import compute
from convscope.web.runs import RunEntry
from convscope.web.units import precompute

from .conftest import serving
from .test_browser import shot, wait_for


def test_precompute_equals_the_per_layer_library_calls(web_run):
    entry = RunEntry("digits8", web_run)
    steps = []
    n = precompute(entry, steps.append)
    run = entry.run
    ds = compute.test_dataset(run)
    layers = [li["name"] for li in compute.shown_layers(entry)]
    assert n == len(layers) == 9 and len(steps) == 2
    for name in ("conv1", "pool2", "relu3"):
        ref = topk(run.model, ds, [name], k=compute.TOPK, norm=run.normalization)[name]
        got = entry.cache[("topk", name)][name]
        assert [[(r.index, r.y, r.x) for r in c] for c in got] == [[(r.index, r.y, r.x) for r in c] for c in ref]
        np.testing.assert_allclose([[r.value for r in c] for c in got], [[r.value for r in c] for c in ref],
                                   rtol=1e-5, atol=1e-6)
        sref = activation_sparsity(run.model, ds, run.normalization, [name])[0]
        sgot = entry.cache[("sparsity", name)][0]
        assert sgot.channel_zero_fraction == sref.channel_zero_fraction and sgot.dead_channels == sref.dead_channels
    # a unit page then reads the precomputed records (no new pass)
    d = compute.unit_data(entry, "relu1", 2)
    assert [r["index"] for r in d.topk] == [r.index for r in entry.cache[("topk", "relu1")]["relu1"][2]]


def _pixels(uri: str, size: tuple[int, int]) -> np.ndarray:
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))[..., 0]
    f = img.shape[0] // size[0]
    return img[::f, ::f]                                   # the enlargement is nearest-neighbour, integer factor


def test_unit_page_progress_then_on_demand_pictures(runs_dir, web_run, browser_page):
    page, log = browser_page
    with serving(web_run) as srv:
        page.goto(srv.base + "/run/digits8/unit/relu2/1")
        # progress page first (the server has just started) or the page itself: either way it ends on the page
        end = time.monotonic() + 120
        while time.monotonic() < end:        # (the progress page reloads itself: evaluate may meet a navigation)
            try:
                if page.locator("img.patch").count():
                    break
            except PlaywrightError:
                pass
            page.wait_for_timeout(100)
        assert "relu2 · channel 1" in page.text_content("h1.unit-title")
        out = srv.proc.stdout.readline() + srv.proc.stdout.readline() + srv.proc.stdout.readline()
        assert "unit pages of digits8 ready" in out
        page.click('section[data-kind="visualize"] button.compute')
        wait_for(page, "() => document.querySelector('section[data-kind=\"visualize\"]').dataset.done === '1'", 120)
        page.click('section[data-kind="project"] button.compute')
        wait_for(page, "() => document.querySelector('section[data-kind=\"project\"]').dataset.done === '1'", 120)
        assert page.locator('section[data-kind="project"] table.projections tr').count() == 1 + 4
        assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        shot(page, "serve-unit.png")
        # the optimized image's activation, recomputed here with a plain forward, is the value the page shows
        import httpx

        v = httpx.post(srv.base + "/api/run/digits8/unit/relu2/1/visualize", headers={"origin": srv.base}).json()
        from convscope.training import load_run

        run = load_run(web_run)
        x = torch.from_numpy(_pixels(v["image"], run.input_shape[1:]).copy())[None, None]
        with torch.no_grad(), capture(run.model, ["relu2"]) as maps:
            run.model(run.preprocess(x))
        assert abs(float(maps["relu2"][0, 1].max()) - v["value"]) < 1e-4 * max(1.0, abs(v["value"]))
        shown = page.text_content('section[data-kind="visualize"] figcaption')
        assert f"{v['value']:.2f}" in shown
        bad = httpx.post(srv.base + "/api/run/digits8/unit/relu2/99/project", headers={"origin": srv.base})
        assert bad.status_code == 400 and "channels 0..15" in bad.json()["error"]
        # once computed, the unit's own pictures are on its page at the next visit, without a click
        first = page.locator('section[data-kind="visualize"] img').first.get_attribute("src")
        page.goto(srv.base + "/run/digits8/unit/relu2/1")
        wait_for(page, "() => [...document.querySelectorAll('section.ondemand')].every(s => s.dataset.done === '1')",
                 30)
        assert page.locator('section[data-kind="visualize"] img').first.get_attribute("src") == first
        assert page.locator('section[data-kind="project"] table.projections tr').count() == 1 + 4
        page.goto(srv.base + "/run/digits8/unit/relu2/2")          # another unit: its own, not computed yet
        assert page.get_attribute('section[data-kind="visualize"]', "data-cached") is None
        assert page.locator('section[data-kind="visualize"] img').count() == 0
