"""The live training dashboard in Chromium: a run started (in another process) after the page is open appears
and its loss curve grows without a reload; when it finishes, its confusion matrix opens the test images of a
cell, each linking to the Draw page, and they are the images the run really confuses (checked with torch)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from convscope.data import load
from convscope.training import load_run
from convscope.training.evaluate import predict_logits
from convscope.web.live import read_lines_from

from .conftest import Server, chromium_browser, free_port
from .test_browser import shot, wait_for


@pytest.fixture
def live_root(runs_dir, tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(runs_dir / "digits4", root / "digits4")
    return root


def points(page, rid: str) -> int:
    sel = f'#chart-loss path.series[data-run="{rid}"]:not([stroke-opacity])'
    return int(page.get_attribute(sel, "data-points") or 0) if page.locator(sel).count() else 0


def test_a_run_started_later_appears_and_grows_without_reload(live_root, tmp_path):
    srv = Server([str(live_root)], free_port())
    train = None
    try:
        srv.wait_ready()
        with chromium_browser() as browser:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(srv.base + "/training")
            wait_for(page, "() => document.querySelector('#runtoggles [data-run=\"digits4\"]') !== null")
            assert points(page, "digits4") > 0
            page.evaluate("document.body.dataset.marker = 'same page'")        # gone if the page reloads
            train = subprocess.Popen(
                [sys.executable, "-m", "convscope", "train", "--out", str(live_root / "live"), "--model", "fast",
                 "--model-arg", "width=16", "--train-subset", "2000", "--batch-size", "8", "--epochs", "8",
                 "--log-every", "1", "--threads", "1", "--diagnose", "50", "--quiet"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            wait_for(page, "() => document.querySelector('#runtoggles [data-run=\"live\"]') !== null", 90)
            wait_for(page, "() => (document.querySelector('#runtoggles [data-run=\"live\"] .badge') || {})"
                           ".textContent === 'training'", 60)
            seen = [points(page, "live")]
            end = time.monotonic() + 120
            while train.poll() is None and time.monotonic() < end:
                page.wait_for_timeout(300)
                if points(page, "live") != seen[-1]:
                    seen.append(points(page, "live"))
            assert train.wait(600) == 0, train.stderr.read()    # a loaded machine trains slowly
            # the curve grew over several polls while training ran, on the same page
            assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] > seen[0], seen
            assert page.evaluate("document.body.dataset.marker") == "same page"
            wait_for(page, "() => (document.querySelector('#runtoggles [data-run=\"live\"] .badge') || {})"
                           ".textContent === 'finished'", 30)
            steps = [r for r in read_lines_from(live_root / "live" / "metrics.jsonl", 0).records
                     if r["kind"] == "step"]
            wait_for(page, f"() => +(document.querySelector('#chart-loss path.series[data-run=\"live\"]"
                           f":not([stroke-opacity])') || {{dataset: {{}}}}).getAttribute('data-points') "
                           f"=== {len(steps)}", 10)
            # the finished run's card: confusion matrix cells open their test images
            wait_for(page, "() => document.querySelector('section.run[data-run=\"live\"] table.confusion') !== null",
                     60)
            run = load_run(live_root / "live")
            test = load("digits", "test")
            pred = predict_logits(run.model, test.images, run.normalization).argmax(1).numpy()
            labels = test.labels.numpy()
            wrong = [(t, q) for t in range(10) for q in range(10) if t != q and ((labels == t) & (pred == q)).any()]
            t, q = max(wrong, key=lambda c: ((labels == c[0]) & (pred == c[1])).sum())
            cell = f'section.run[data-run="live"] td[data-true="{t}"][data-pred="{q}"]'
            assert int(page.text_content(cell)) == int(((labels == t) & (pred == q)).sum())
            page.click(cell)
            wait_for(page, "() => document.querySelectorAll('#gallery-live a.testimg').length > 0")
            hrefs = page.eval_on_selector_all("#gallery-live a.testimg", "as => as.map(a => a.getAttribute('href'))")
            idx = [int(h.split("test_index=")[1]) for h in hrefs]
            assert all(h.startswith("/run/live/draw?test_index=") for h in hrefs)
            assert idx == np.flatnonzero((labels == t) & (pred == q)).tolist()[:200]
            # diagnostics (--diagnose) and doctor's findings are on the card
            wait_for(page, "() => document.querySelector('section.run[data-run=\"live\"] .diagnostics svg') "
                           "!== null && /convscope doctor/.test(document.querySelector('section.run[data-run="
                           "\"live\"] .diagnostics').textContent)", 30)
            page.hover("#chart-loss svg", position={"x": 200, "y": 100})
            assert "step" in page.text_content("#chart-loss .charttip")
            shot(page, "serve-training.png")
            page.click("#gallery-live a.testimg >> nth=0")
            page.wait_for_url(f"**/run/live/draw?test_index={idx[0]}")
            # the Draw page loads that test image and predicts it (status names the image and its true class)
            wait_for(page, f"() => document.getElementById('draw').dataset.testIndex === '{idx[0]}' && "
                           "document.getElementById('draw').dataset.busy === '0'", 30)
            assert f"test image {idx[0]} (true class {test.classes[t]})" in page.text_content("#status")
        assert [m for m in errors if "favicon" not in m] == []
        # the test image the link names is served as the dataset holds it
        r = httpx.get(f"{srv.base}/api/run/live/test_image/{idx[0]}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        import io

        assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.content))), test.images[idx[0], 0].numpy())
        assert r.headers["x-label"] == test.classes[t]
        bad = httpx.get(f"{srv.base}/api/run/live/test_image/999999")
        assert bad.status_code == 400 and "test_index 999999" in bad.json()["error"]
    finally:
        if train is not None:
            if train.poll() is None:
                train.kill()
                train.wait()
            train.stderr.close()
        srv.stop()


def test_read_lines_from_keeps_partial_lines_and_detects_a_cut_file(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"kind": "step", "step": 0, "loss": 2.3}\n{"kind": "step", "st')
    c = read_lines_from(f, 0)
    assert [r["step"] for r in c.records] == [0] and c.next_offset == len('{"kind": "step", "step": 0, "loss": 2.3}\n')
    with f.open("a") as h:
        h.write('ep": 1, "loss": 2.1}\n')
    c2 = read_lines_from(f, c.next_offset)
    assert [r["step"] for r in c2.records] == [1] and c2.next_offset == f.stat().st_size and not c2.reset
    f.write_text('{"kind": "step", "step": 0}\n')                 # a resumed run cut it back
    assert read_lines_from(f, c2.next_offset).reset
    assert read_lines_from(tmp_path / "none.jsonl", 0).records == []
    f.write_text("not json\n")
    with pytest.raises(Exception, match="line at byte 0 is not JSON"):
        read_lines_from(f, 0)


def test_run_folder_files_that_are_not_regular_are_refused_or_skipped(tmp_path):
    import os

    from convscope.runs.rundir import RunError
    from convscope.web.live import planned, run_folders

    run = tmp_path / "r"
    run.mkdir()
    os.mkfifo(run / "metrics.jsonl")
    with pytest.raises(RunError, match="not a regular file"):         # never blocks on the pipe
        read_lines_from(run / "metrics.jsonl", 0)
    os.mkfifo(run / "config.json")
    assert planned(run) == {} and run_folders([tmp_path]) == []       # a FIFO config.json is no run folder
