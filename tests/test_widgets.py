"""The draw widget (#27 part 2), driven through its model state from Python as the browser drives it: the picture
set on ``image`` comes back as the prediction ``convscope predict`` gives for the same image file, with every
layer's maps; a refused picture names its error and keeps the last prediction."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

pytest.importorskip("anywidget")

from convscope.errors import ConfigError  # noqa: E402
from convscope.inspect import list_layers  # noqa: E402
from convscope.training.report import predict_files  # noqa: E402
from convscope.widgets import draw, png_data_url  # noqa: E402


def drawn_seven(size: int = 280) -> Image.Image:
    """A canvas-like picture: white strokes on black, as the widget's canvas sends (RGBA PNG)."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 255))
    d = ImageDraw.Draw(img)
    d.line([(60, 60), (220, 60), (120, 240)], fill=(255, 255, 255, 255), width=22)
    return img


def test_drawn_image_gives_predict_s_answer_and_every_layer(small_run, tmp_path):
    w = draw(small_run.path)                                       # a run directory works as well as a Run
    img = drawn_seven()
    url = png_data_url(img)
    w.image = url                                                  # what the canvas does: set the model's image
    pred = w.prediction
    assert w.error == "" and w.updates == 1
    path = tmp_path / "seven.png"
    path.write_bytes(base64.b64decode(url.split(",", 1)[1]))       # the very bytes the widget received
    ((_, notes, top),) = predict_files(small_run, [path], k=len(small_run.classes))
    probs = dict(zip(pred["classes"], pred["probabilities"]))
    assert pred["prediction"] == top[0][0]
    for name, p in top:                                            # every class, to the page's 6 decimals
        assert probs[name] == pytest.approx(p, abs=2e-6)
    assert pred["notes"] == [n for n in notes if not n.startswith("prepared:")]   # the same preparation steps
    # every feature-map layer is sent, with (C, H, W) uint8 maps that decode to the right size
    shapes = {li.name: li.output_shape for li in list_layers(small_run.model, small_run.input_shape)}
    names = [layer["name"] for layer in pred["layers"]]
    assert {"conv1", "relu1", "pool1", "conv2", "conv3"} <= set(names)
    for layer in pred["layers"]:
        c, h, ww = layer["shape"]
        assert tuple(layer["shape"]) == tuple(shapes[layer["name"]])
        assert len(base64.b64decode(layer["data"])) == c * h * ww
    # the prepared input the page shows is the one predict classified
    inp = np.frombuffer(base64.b64decode(pred["input"]), np.uint8).reshape(small_run.input_shape)
    assert inp.max() > 0


def test_drawing_again_updates_and_blank_canvas_names_no_digit(small_run):
    w = draw(small_run)
    first = w.draw(drawn_seven())
    blank = w.draw(Image.new("RGBA", (280, 280), (0, 0, 0, 255)))
    assert w.updates == 2 and blank["no_ink"] and not first["no_ink"]
    assert blank["probabilities"] != first["probabilities"]
    assert not any(base64.b64decode(blank["input"]))                # the empty input, shown as such
    assert [layer["name"] for layer in blank["layers"]] == [layer["name"] for layer in first["layers"]]


def test_refused_pictures_say_why_and_keep_the_last_prediction(small_run):
    w = draw(small_run)
    good = w.draw(drawn_seven())
    w.image = "data:image/png;base64,!!!"
    assert "not valid base64" in w.error and w.prediction == good and w.updates == 2
    w.image = "data:image/jpeg;base64,AAAA"
    assert "expected a PNG data URL" in w.error
    w.image = "data:image/png;base64," + base64.b64encode(b"not a png").decode()
    assert "drawing" in w.error and w.prediction == good
    with pytest.raises(ConfigError, match="run: expected a convscope Run"):
        draw(torch.nn.Linear(2, 2))


def test_widget_javascript_is_the_web_helpers_plus_its_own_module():
    from convscope.widgets.draw import DrawWidget

    esm = DrawWidget._esm
    common = (Path(__file__).resolve().parents[1] / "convscope" / "web" / "static" / "common.js").read_text()
    assert esm.startswith(common) and "export default { render }" in esm
    assert "fetch(" not in esm and "http" not in esm.replace("https://", "")   # no server, no network


# ------------------------------------------------------------------ the widget's JavaScript in Chromium


FAKE_MODEL = """async (esm) => {
  // anywidget's model interface (get/set/save_changes/on/off), relayed to the Python widget by the test
  window.__state = {image: "", prediction: {}, error: "", updates: 0};
  window.__handlers = {}; window.__sent = [];
  window.__model = {
    get: (k) => window.__state[k],
    set: (k, v) => { window.__state[k] = v; if (k === "image") window.__sent.push(v); },
    save_changes: () => {},
    on: (ev, f) => { (window.__handlers[ev] = window.__handlers[ev] || []).push(f); },
    off: (ev, f) => { window.__handlers[ev] = (window.__handlers[ev] || []).filter((g) => g !== f); },
  };
  window.__push = (k, v) => { window.__state[k] = v; (window.__handlers["change:" + k] || []).forEach((f) => f()); };
  const url = URL.createObjectURL(new Blob([esm], {type: "text/javascript"}));
  const mod = await import(url);
  mod.default.render({model: window.__model, el: document.getElementById("host")});
}"""


def _relay(page, w) -> int:
    """Send the pictures the page queued to the Python widget and its answers back, as the comm does."""
    n = 0
    for _ in range(200):
        sent = page.evaluate("() => window.__sent.splice(0)")
        if not sent:
            page.wait_for_timeout(100)
            if not page.evaluate("() => window.__sent.length"):
                return n
            continue
        for url in sent:
            w.image = url
            page.evaluate("([p, e]) => { window.__push('prediction', p); window.__push('error', e); }",
                          [w.prediction, w.error])
            page.evaluate("(u) => window.__push('updates', u)", w.updates)
            n += 1
    raise AssertionError("the page kept sending")


def test_widget_draws_and_paints_in_chromium(small_run):
    pytest.importorskip("playwright.sync_api")
    from tests.web.conftest import CHROMIUM, chromium_browser

    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed ({CHROMIUM})")
    from convscope.widgets.draw import CSS, DrawWidget

    w = draw(small_run)
    with chromium_browser() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors, requests = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.set_content(f"<html><head><style>{CSS}</style></head><body><div id='host'></div></body></html>")
        page.evaluate(FAKE_MODEL, DrawWidget._esm)
        assert _relay(page, w) == 1 and w.prediction["no_ink"]          # the empty canvas, sent at once
        n_maps = sum(layer["shape"][0] for layer in w.prediction["layers"])
        assert page.locator(".cs-map").count() == n_maps
        box = page.locator(".cs-pad").bounding_box()
        page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.2 * box["height"])
        page.mouse.down()
        for t in np.linspace(0, 1, 12):                                  # a stroke: updates while drawing
            page.mouse.move(box["x"] + (0.3 + 0.4 * t) * box["width"], box["y"] + (0.2 + 0.6 * t) * box["height"])
            _relay(page, w)
        page.mouse.up()
        _relay(page, w)
        assert w.updates >= 3 and not w.prediction["no_ink"] and not errors
        assert page.locator(".cs-prediction").inner_text() == w.prediction["prediction"]
        shown = page.evaluate("() => [...document.querySelectorAll('.cs-val')].map((e) => e.textContent)")
        assert shown == [f"{100 * p:.1f}%" for p in w.prediction["probabilities"]]
        painted = page.evaluate("""() => [...document.querySelectorAll('.cs-map')].map((c) => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2]; return s; })""")
        assert len(painted) == n_maps and all(s > 0 for s in painted)    # every map painted
        assert all(u.startswith(("about:", "blob:", "data:")) for u in requests), requests   # no network
