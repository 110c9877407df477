"""The Draw page's audit button, in Debian's Chromium against a real ``convscope serve``: it says its estimate,
runs the trust audit in the background with visible progress, refuses a second one for the same run, is found
again by a reloaded page, relabels the attribution maps from the new audit.json when done, and writes the same
files as ``convscope explain RUN --audit`` (the same rows and numbers); on a read-only run folder it is refused
politely, in the page and by the API."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys

import httpx
import pytest

from .conftest import serving
from .test_browser import shot, wait_for, wait_update
from .test_network import draw_seven

IMAGES = 8      # a small audit: the button's default is the CLI's 500
ROW_KEYS = ("method", "control", "randomization", "faithfulness", "degenerate_fraction", "versus_controls",
            "passes_randomization", "passes_faithfulness", "separates_from_controls", "trusted", "verdict")


@pytest.fixture(scope="module")
def audit_server(runs_dir, tmp_path_factory):
    """The small digits4 run copied (its own inspect/ folder), served alone."""
    root = tmp_path_factory.mktemp("audit_run")
    shutil.copytree(runs_dir / "digits4", root / "digits4")
    with serving(root / "digits4") as srv:
        yield srv, root / "digits4"


def state(page) -> str:
    return page.get_attribute("#audit", "data-state") or ""


def test_audit_button_runs_the_cli_audit_and_relabels(audit_server, page_at, tmp_path):
    srv, run_dir = audit_server
    api = f"{srv.base}/api/run/digits4/audit"
    page = page_at(1366, 900, allow=("409",))
    page.goto(srv.base + "/run/digits4/draw")
    n = wait_update(page, 0)
    page.check("#attr-on")
    draw_seven(page, n)
    wait_for(page, "() => document.querySelectorAll('#attr-maps figure').length === 4", 120)
    assert set(page.locator("#attr-maps .verdict").all_text_contents()) == {"not audited"}
    wait_for(page, "() => document.getElementById('audit').dataset.state === 'idle'")
    # the estimate on the button: the default image count (the CLI's 500) times the server's seconds per image
    st = httpx.get(api).json()
    assert page.input_value("#audit-images") == "500" and st["default_images"] == 500
    secs = 500 * st["seconds_per_image"]
    want = f"{round(secs)} s" if secs < 90 else f"{round(secs / 60)} min"
    assert page.text_content("#audit-run") == f"Run the trust audit (about {want} here)"
    assert not page.is_disabled("#audit-run")

    for bad, words in ((0, "images: must be [1, 2000], got 0; the audit reads the first 1 to 2,000 images"),
                       ("8", "images: expected a whole number")):
        r = httpx.post(api, json={"images": bad})
        assert r.status_code == 400 and r.json()["error"].startswith(words), r.text
    page.fill("#audit-images", str(IMAGES))
    page.click("#audit-run")
    wait_for(page, "() => ['running', 'done'].includes(document.getElementById('audit').dataset.state)", 30)
    second = httpx.post(api, json={"images": IMAGES})          # one at a time per run
    if state(page) == "running" and httpx.get(api).json()["state"] == "running":
        assert second.status_code == 409 and "already running" in second.json()["error"]
        assert page.is_disabled("#audit-run") and page.is_visible("#audit-progress")
        assert re.match(rf"Auditing {IMAGES} images: .+ \(\d+ of 11\), .+ so far, about .+ left", page.text_content(
            "#audit-status"))
        page.reload()                                          # the page finds the running audit again
        wait_for(page, "() => document.getElementById('audit').dataset.state !== ''")
        if state(page) == "running":
            assert page.is_disabled("#audit-run")
        n = wait_update(page, 0)
        page.check("#attr-on")
        draw_seven(page, n)
        wait_for(page, "() => document.querySelectorAll('#attr-maps figure').length === 4", 120)
    wait_for(page, "() => document.getElementById('audit').dataset.state === 'done'", 900)
    assert not page.is_disabled("#audit-run") and not page.is_visible("#audit-progress")

    doc = json.loads((run_dir / "inspect" / "audit.json").read_text())
    assert doc["complete"] is True and doc["images"] == IMAGES and (run_dir / "inspect" / "audit.png").is_file()
    rows = {r["method"]: r for r in doc["methods"]}
    assert list(rows) == ["saliency", "smoothgrad", "integrated_gradients", "gradcam", "occlusion",
                          "guided_gradcam", "guided_backprop", "deconvnet", "control: image", "control: edges",
                          "control: random"]
    # the maps on screen now carry the new audit's verdicts
    wait_for(page, "() => ![...document.querySelectorAll('#attr-maps .verdict')].some(v => "
                   "v.textContent === 'not audited')")
    for f in page.locator("#attr-maps figure").all():
        r = rows[f.get_attribute("data-method")]
        want = "audit: trusted" if r["trusted"] else f"audit: not trusted ({r['verdict'].removeprefix('no: ')})"
        assert f.locator(".verdict").text_content() == want
    assert f"Verdicts from inspect/audit.json ({IMAGES} digits test images)" in page.text_content("#attr-note")
    page.evaluate("document.getElementById('attr').scrollIntoView({block: 'end'})")
    shot(page, "serve-audit.png")

    # the same audit as the CLI's, on the same images: the same rows, numbers and verdicts
    out = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "convscope", "explain", str(run_dir), "--audit", "--limit",
                           str(IMAGES), "--out", str(out)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})     # one torch thread, as the server's
    assert done.returncode == 0, done.stderr
    cli = json.loads((out / "audit.json").read_text())
    assert {k: cli[k] for k in ("images", "dataset", "split", "complete", "rules")} == \
           {k: doc[k] for k in ("images", "dataset", "split", "complete", "rules")}
    for a, b in zip(cli["methods"], doc["methods"], strict=True):     # (as JSON text: NaN equals NaN)
        assert json.dumps({k: a[k] for k in ROW_KEYS}, sort_keys=True) == \
               json.dumps({k: b[k] for k in ROW_KEYS}, sort_keys=True), a["method"]
    assert (out / "audit.md").read_text() == (run_dir / "inspect" / "audit.md").read_text()


@contextlib.contextmanager
def read_only(folder):
    """``folder`` made read-only: permission bits for a normal user; a read-only bind mount for root (who
    ignores permission bits); the test is skipped where neither can be done."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if p.is_dir()}
        for p in modes:
            p.chmod(0o555)
        try:
            yield
        finally:
            for p, m in modes.items():
                p.chmod(m)
        return
    ok = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode == 0
    if ok and subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True).returncode:
        subprocess.run(["umount", str(folder)], check=False)
        ok = False
    if not ok:
        pytest.skip("cannot make a folder read-only here (root without mount)")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_audit_refused_politely_on_a_read_only_run(runs_dir, page_at, tmp_path):
    run_dir = tmp_path / "digits4"
    shutil.copytree(runs_dir / "digits4", run_dir)
    with read_only(run_dir), serving(run_dir) as srv:
        api = f"{srv.base}/api/run/digits4/audit"
        st = httpx.get(api).json()
        assert st["state"] == "idle" and str(run_dir) in st["readonly"]
        r = httpx.post(api, json={"images": 4})
        assert r.status_code == 403 and r.json()["error"].startswith("cannot audit here: the run folder ")
        assert "make it writable, or copy the run somewhere writable" in r.json()["error"]
        page = page_at(1366, 900, allow=("403",))
        page.goto(srv.base + "/run/digits4/draw")
        wait_for(page, "() => document.getElementById('audit').dataset.state === 'idle'")
        assert page.is_disabled("#audit-run") and page.is_disabled("#audit-images")
        assert page.text_content("#audit-status").startswith(f"Not here: the run folder {run_dir}")
        assert not (run_dir / "inspect").exists()
