"""``convscope report``: one self-contained HTML file that opens in Chromium with the network disabled and
every image rendered; the same numbers as the library functions it is made from."""

from __future__ import annotations

import re
import subprocess
import sys
from html import unescape

from convscope.inspect import hook_count
from convscope.training import load_run

from .conftest import chromium_browser


def test_report_self_contained_and_renders_offline(web_run, tmp_path):
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "convscope", "report", str(web_run), "-o", str(out),
                           "--layer", "relu1"], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    # nothing that could load from anywhere: no script, no link, every src an inline data: URI
    assert "<script" not in html and "<link rel=\"stylesheet\"" not in html
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "default-src 'none'" in unescape(html)
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith(("#", "data:")) for h in hrefs)  # links only within the file
    assert not re.search(r"(?:src|href)\s*=\s*['\"]?\s*(?:https?:)?//", html, re.I)
    for anchor in ("training", "network", "layers", "sparsity", "edges", "matrix", "units"):
        assert f'<details class="page card" id="{anchor}"' in html    # collapsible sections
    assert html.count('<details class="page card unit" id="unit-') == 8   # relu1 has 8 channels
    # only what was computed: no placeholder for what was not; the layer's CLI picture once, not per unit
    assert "Not computed" not in html and "convscope visualize" not in html and "no curve.png" not in html
    assert html.count('alt="inspect/visualize-relu1.png"') == 1
    assert 'alt="network view"' in html
    run = load_run(web_run)
    assert f"{100 * run.summary['test_accuracy']:.2f}%" in html

    with chromium_browser() as browser:
        context = browser.new_context(offline=True)
        requests, errors = [], []
        page = context.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(out.as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(images) > 8 * 18 and all(c and w > 0 and h > 0 for c, w, h in images)
    assert [u for u in requests if not u.startswith(("data:", "file:"))] == []
    assert errors == []
    assert hook_count(run.model) == 0


def _network_picture(html: str) -> bytes:
    import base64

    src = re.search(r'<img class="plot network" src="data:image/png;base64,([^"]+)" alt="network view">', html)
    assert src, "no network picture"
    return base64.b64decode(src.group(1))


def test_report_network_picture_of_the_chosen_image(web_run, tmp_path):
    """--test-index N and --image PATH choose the network picture's input (the image through the one image path,
    as predict prepares it); the report says which, and the picture is the one drawn for exactly that input."""
    from PIL import Image, ImageDraw

    from convscope.data.prepare import default_mode, prepare_image
    from convscope.web import build_report
    from convscope.web.compute import test_dataset
    from convscope.web.network_picture import network_png
    from convscope.web.runs import RunEntry

    entry = RunEntry("r", web_run.resolve())
    ds = test_dataset(entry.run)
    html = build_report(web_run, tmp_path / "a.html", test_index=3, max_units=1).read_text()
    assert f"Test image #3 (a {ds.classes[int(ds.labels[3])]}) through every layer" in html
    assert _network_picture(html) == network_png(entry, ds.images[3])[0]
    assert _network_picture(html) != network_png(entry, ds.images[0])[0]       # not image 0 after all

    seven = tmp_path / "seven.png"                                             # dark ink on white, big
    img = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(img).line([(40, 40), (160, 40), (90, 170)], fill=0, width=18)
    img.save(seven)
    html = build_report(web_run, tmp_path / "b.html", image=seven, max_units=1).read_text()
    prep = prepare_image(seven, entry.run.input_shape, mode=default_mode(entry.run.meta))
    assert f"Your image <code>{seven}</code> (prepared: {default_mode(entry.run.meta)}" in html
    assert _network_picture(html) == network_png(entry, prep.tensor)[0]

    # refused before any work, naming the flag
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    for args, words in ((["--test-index", "2000"], "--test-index"),
                        (["--image", str(tmp_path / "none.png")], "none.png"),
                        (["--image", str(seven), "--test-index", "1"], "not allowed with"),
                        (["--image", str(blank)], "blank.png")):
        done = subprocess.run([sys.executable, "-m", "convscope", "report", str(web_run), "-o",
                               str(tmp_path / "c.html"), *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
        assert not (tmp_path / "c.html").exists()
