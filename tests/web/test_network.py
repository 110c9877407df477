"""The network view (the Draw page), the conv drill-down and the matrix explorer's trained mode, in Debian's
Chromium against a real ``convscope serve``: the empty canvas names no digit; a drawn 7 tops the logits and the
softmax columns; hovering a map lights exactly the maps that feed it; a clicked conv pixel's worked-out value
equals PyTorch's output of that layer at that pixel, the matrix row (built here with conv_matrix) times the
unrolled input, and the trained-mode matrix page's value; the layers after it match torch too; an invalid
geometry clears the matrix explorer; the main job's model (fast2, width 32) fits 1366 x 900 and a phone keeps
the prediction in view. Screenshots go to $CONVSCOPE_SCREENSHOTS when set (docs/web.md shows them)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from convscope.conv import conv_matrix
from convscope.training import load_run

from .conftest import serving
from .test_browser import shot, stroke, wait_for, wait_update

SEVEN = ([(0.22, 0.2), (0.78, 0.2)], [(0.78, 0.2), (0.62, 0.5), (0.45, 0.85)])   # bar, then the diagonal


def draw_seven(page, n: int) -> int:
    for s in SEVEN:
        stroke(page, s)
    return wait_update(page, n)


def column_values(page, selector: str) -> list[float]:
    return [float(v.rstrip("%")) for v in page.locator(selector).all_text_contents()]


def forward_at(run, x_u8: torch.Tensor, layers: list[str]) -> tuple[dict, dict]:
    """PyTorch as the oracle: the inputs and outputs of ``layers`` (first example) for one uint8 input."""
    mods = dict(run.model.named_modules())
    ins, outs, handles = {}, {}, []
    for name in layers:
        handles.append(mods[name].register_forward_pre_hook(
            lambda m, a, name=name: ins.__setitem__(name, a[0][0].detach().clone().double())))
        handles.append(mods[name].register_forward_hook(
            lambda m, a, o, name=name: outs.__setitem__(name, o[0].detach().clone().double())))
    try:
        with torch.no_grad():
            run.model.eval()(run.preprocess(x_u8))
    finally:
        for h in handles:
            h.remove()
    return ins, outs


def test_empty_canvas_then_a_seven_tops_logits_and_softmax(server, page_at):
    page = page_at()
    page.goto(server.base + "/run/digits8/draw")
    n = wait_update(page, 0)
    assert page.get_attribute("#draw", "data-state") == "empty"
    assert page.text_content("#prediction") == "" and page.is_visible("#empty")
    assert page.locator("#probs .prob.top, #logits .logit.top").count() == 0
    assert set(page.locator("#probs .val, #logits .val").all_text_contents()) == {"–"}
    n = draw_seven(page, n)
    assert page.get_attribute("#draw", "data-state") == "predicted" and not page.is_visible("#empty")
    assert page.text_content("#prediction") == "7"
    probs, logits = column_values(page, "#probs .val"), column_values(page, "#logits .val")
    assert np.argmax(probs) == 7 and np.argmax(logits) == 7 and abs(sum(probs) - 100) < 1
    assert page.locator("#probs .prob.top").get_attribute("data-class") == "7"
    assert page.locator("#logits .logit.top").get_attribute("data-class") == "7"
    # the softmax column is the softmax of the logits column (2-decimal logits: 1% tolerance)
    p = torch.softmax(torch.tensor(logits), 0).numpy() * 100
    assert np.abs(p - np.array(probs)).max() < 1.0
    # batch norm hidden by default; the toggle shows its columns
    assert page.locator('.col[data-col="bn1"]').is_hidden()
    page.check("#show-bn")
    assert page.locator('.col[data-col="bn1"]').is_visible()
    assert page.locator('.layer[data-layer="bn1"] canvas').count() == 8
    page.uncheck("#show-bn")
    page.click("#clear")
    wait_update(page, n)
    assert page.get_attribute("#draw", "data-state") == "empty" and page.text_content("#prediction") == ""


def test_hover_lights_the_maps_that_feed_a_map(server, page_at):
    page = page_at()
    page.goto(server.base + "/run/digits8/draw")
    wait_update(page, 0)
    lit = "els => els.map(e => e.closest('.layer') ? e.closest('.layer').dataset.layer + ':' + e.dataset.ch : 'input')"
    # fast: conv1 bn1 relu1 pool1 conv2 ...: conv2 channel 5 reads all 8 maps of pool1 through 8 kernels
    page.hover('.layer[data-layer="conv2"] canvas >> nth=5')
    assert sorted(page.eval_on_selector_all("#netscroll .lit", lit)) == sorted(
        [f"pool1:{k}" for k in range(8)] + ["conv2:5"])
    assert page.locator("#links line").count() == 8 and page.locator("#hoverinfo canvas.kernel").count() == 8
    # relu1 channel 2: its own channel of bn1, hidden, so of conv1; with batch norm shown, of bn1
    page.hover('.layer[data-layer="relu1"] canvas >> nth=2')
    assert sorted(page.eval_on_selector_all("#netscroll .lit", lit)) == ["conv1:2", "relu1:2"]
    page.check("#show-bn")
    page.hover('.layer[data-layer="relu1"] canvas >> nth=2')
    assert sorted(page.eval_on_selector_all("#netscroll .lit", lit)) == ["bn1:2", "relu1:2"]
    page.hover('.layer[data-layer="conv1"] canvas >> nth=0')                # conv1 reads the model input
    assert page.locator("#inputview.lit").count() == 1 and page.locator("#links line").count() == 1


def test_drill_down_equals_torch_and_the_matrix_row(server, page_at, web_run):
    page = page_at()
    page.goto(server.base + "/run/digits8/draw")
    draw_seven(page, wait_update(page, 0))
    ch, y, x = 5, 6, 9                                          # conv2 of fast width 8: 16 x 14 x 14
    cv = page.locator('.layer[data-layer="conv2"] canvas').nth(ch)
    box = cv.bounding_box()
    page.mouse.click(box["x"] + (x + 0.5) * box["width"] / 14, box["y"] + (y + 0.5) * box["height"] / 14)
    wait_for(page, f"() => document.getElementById('drill').dataset.at === 'conv2/{ch}/{y}/{x}'")
    value = float(page.get_attribute("#drill-value", "data-value"))
    # the oracle: PyTorch's conv2 output at that pixel for the page's own input
    run = load_run(web_run)
    x_u8 = torch.frombuffer(bytearray(base64.b64decode(page.get_attribute("#draw", "data-input-b64"))),
                            dtype=torch.uint8).reshape(1, *run.input_shape)
    assert x_u8.float().std() > 0                               # the drawing, not a blank
    ins, outs = forward_at(run, x_u8, ["conv2", "bn2", "relu2", "pool2"])
    assert value == pytest.approx(float(outs["conv2"][ch, y, x]), abs=1e-4)
    # ... and the layer's matrix row for that pixel times the unrolled input (the whole layer's matrix here)
    conv = run.model.conv2
    m = conv_matrix(conv.weight.detach().double(), tuple(ins["conv2"].shape), stride=conv.stride,
                    padding=conv.padding, dilation=conv.dilation)
    row = ch * 14 * 14 + y * 14 + x
    via_matrix = float(m.getrow(row).dot(ins["conv2"].reshape(-1).numpy())[0])
    assert value == pytest.approx(via_matrix, abs=1e-6)
    # the layers after it, pixel by pixel: bn2, relu2 at (y, x), then pool2 at (y // 2, x // 2)
    after = page.eval_on_selector_all("#drill ol.chain li", "els => els.map(e => [e.dataset.layer, +e.dataset.value])")
    assert [a[0] for a in after] == ["bn2", "relu2", "pool2"]
    assert after[0][1] == pytest.approx(float(outs["bn2"][ch, y, x]), abs=1e-4)
    assert after[1][1] == pytest.approx(float(outs["relu2"][ch, y, x]), abs=1e-4)
    assert after[2][1] == pytest.approx(float(outs["pool2"][ch, y // 2, x // 2]), abs=1e-4)
    shot(page, "serve-drill.png")
    # the link opens the matrix explorer on this layer's row for this pixel and this drawing
    page.click("#drill-matrix")
    wait_for(page, f"() => document.body.dataset.trained === 'conv2/{ch}/{y}/{x}'")
    assert float(page.get_attribute("#t-value", "data-value")) == pytest.approx(via_matrix, abs=1e-6)
    assert page.text_content("#t-title").startswith(f"conv2 of run digits8 as a matrix: row {row} of 3,136 × 1,568")
    assert page.locator("#t-table tr[data-col]").count() == 8 * 9    # 8 input maps x 3 x 3 taps, none padded
    assert page.locator("#t-rows canvas.rowmap").count() == 8
    shot(page, "serve-matrix-row.png")
    # a padded corner of the first conv, through the API (the model input is the conv's input)
    r = httpx.post(server.base + "/api/run/digits8/conv", json={"layer": "conv1", "ch": 3, "y": 0, "x": 0,
                                                                "input": page.evaluate(
                                                                    "decodeURIComponent(location.hash.slice(7))")})
    assert r.status_code == 200, r.text
    d = r.json()
    ins1, outs1 = forward_at(run, x_u8, ["conv1"])
    assert d["value"] == pytest.approx(float(outs1["conv1"][3, 0, 0]), abs=1e-4)
    assert d["inside"] == [[False, False, False], [False, True, True], [False, True, True]]
    assert d["matrix"]["nnz_row"] == 4                           # a corner reads 2 x 2 real pixels


def test_conv_api_refuses_bad_requests(server):
    url = server.base + "/api/run/digits8/conv"
    good = base64.b64encode(bytes(28 * 28)).decode()
    cases = [({"layer": "relu1", "ch": 0, "y": 0, "x": 0, "input": good}, "not a conv layer"),
             ({"layer": "conv2", "ch": 16, "y": 0, "x": 0, "input": good}, "ch: 16 is outside 0..15"),
             ({"layer": "conv2", "ch": 0, "y": 0, "x": 0, "input": good[:-8]}, "needs 784"),
             ({"layer": "conv2", "ch": 0, "y": 0, "x": 0, "input": "%%%"}, "not valid base64")]
    for body, msg in cases:
        r = httpx.post(url, json=body)
        assert r.status_code == 400 and msg in r.json()["error"], (body, r.text)
    r = httpx.post(url, content=b"layer=conv1", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415


def test_matrix_explorer_clears_on_invalid_geometry(server, page_at):
    page = page_at(1280, 900, allow=("status of 400",))
    page.goto(server.base + "/matrix")
    wait_for(page, "() => (document.body.dataset.matrix || '').includes('h=4')")
    assert page.locator("#m-matrix tr[data-row]").count() == 4
    page.fill("#m-kh", "9")                                      # over the explorer's limit of 7
    wait_for(page, "() => document.body.dataset.matrix === 'invalid'")
    assert "kernel H (kh): 9 is outside 1..7" in page.text_content("#m-info")   # the label the reader sees
    assert "error" in page.get_attribute("#m-info", "class")
    for part in ("#m-input", "#m-kernel", "#m-output", "#m-matrix"):
        assert page.locator(f"{part} > *").count() == 0, part
    assert page.text_content("#m-shape") == ""
    page.fill("#m-kh", "3")
    wait_for(page, "() => (document.body.dataset.matrix || '').includes('kh=3')")
    assert page.locator("#m-matrix tr[data-row]").count() == 4 and "error" not in page.get_attribute("#m-info", "class")


@pytest.fixture(scope="module")
def fast2_server(tmp_path_factory):
    """The main job's model, fast2 at its default width 32 (briefly trained: the layout is what is tested)."""
    import convscope

    root = tmp_path_factory.mktemp("fast2_run")
    convscope.train({"model": "fast2", "batch_size": 128, "threads": 1, "train_subset": 3000, "epochs": 1},
                    out=root / "fast2", progress=False)
    with serving(root / "fast2") as srv:
        yield srv


def test_main_model_fits_1366x900_and_deep_layers_change(fast2_server, page_at):
    page = page_at(1366, 900)
    page.goto(fast2_server.base + "/run/fast2/draw")
    n = wait_update(page, 0)
    relu4 = """() => [...document.querySelectorAll('.layer[data-layer="relu4"] canvas')].map(c =>
        [...c.getContext('2d').getImageData(0, 0, c.width, c.height).data].join(','))"""
    before = page.evaluate(relu4)
    draw_seven(page, n)
    after = page.evaluate(relu4)
    assert sum(a != b for a, b in zip(before, after)) > 32          # the deepest maps follow the pen
    assert page.get_attribute("#draw", "data-scrolls") == "0" and page.locator(".maps.overflow").count() == 0
    boxes = page.eval_on_selector_all(".col:not([hidden]) canvas.map, #probs .prob, #logits .logit",
                                      "els => els.map(e => { const r = e.getBoundingClientRect(); "
                                      "return [r.right, r.bottom, r.width]; })")
    assert len(boxes) == 32 * 3 + 64 * 3 + 128 * 5 + 20
    assert max(b[0] for b in boxes) <= 1366 and max(b[1] for b in boxes) <= 900 and min(b[2] for b in boxes) >= 10
    shot(page, "serve-network.png")
    # a short window: the tallest columns cannot fit, scroll, and say so
    page.set_viewport_size({"width": 1366, "height": 420})
    wait_for(page, "() => document.querySelectorAll('.maps.overflow').length > 0")
    notes = page.locator(".col .more").all_text_contents()
    assert any("of 128 maps in view: scroll the column" in t for t in notes)


def test_phone_keeps_the_prediction_in_view(server, page_at):
    page = page_at(390, 844)
    page.goto(server.base + "/run/digits8/draw")
    draw_seven(page, wait_update(page, 0))
    assert page.text_content("#prediction") == "7"
    for sel in ("#pad", "#prediction"):
        b = page.locator(sel).bounding_box()
        assert b["x"] >= 0 and b["y"] >= 0 and b["x"] + b["width"] <= 390 and b["y"] + b["height"] <= 844, sel
    shot(page, "serve-phone.png")


def test_attribution_overlays_carry_the_audit_verdict(fast2_server, page_at):
    run_dir = next(fast2_server_dirs(fast2_server))
    audit = run_dir / "inspect" / "audit.json"
    audit.parent.mkdir(exist_ok=True)
    # the format `convscope explain RUN --audit` writes (two methods audited here: the others say so)
    audit.write_text(json.dumps({"images": 8, "dataset": "digits", "split": "test", "complete": True, "methods": [
        {"method": "saliency", "control": False, "trusted": False, "verdict": "no: no better than a control"},
        {"method": "occlusion", "control": False, "trusted": True, "verdict": "yes"},
        {"method": "control: image", "control": True, "trusted": False, "verdict": "control (ignores the model)"}]}))
    try:
        page = page_at(1366, 900)
        page.goto(fast2_server.base + "/run/fast2/draw")
        n = wait_update(page, 0)
        page.check("#attr-on")
        draw_seven(page, n)
        wait_for(page, "() => +(document.getElementById('attr').dataset.done || 0) > 0 && "
                       "!document.getElementById('attr-status').textContent.startsWith('computing')", 120)
        figs = page.locator("#attr-maps figure")
        assert figs.count() == 4
        verdicts = {f.get_attribute("data-method"): f.locator(".verdict").text_content() for f in figs.all()}
        assert verdicts == {"saliency": "audit: not trusted (no better than a control)", "occlusion": "audit: trusted",
                            "gradcam": "not audited", "integrated_gradients": "not audited"}
        assert "Verdicts from inspect/audit.json (8 digits test images)" in page.text_content("#attr-note")
        # each map as the library computes it for the page's input; a constant one is flagged, not drawn
        run = load_run(run_dir)
        x_u8 = torch.frombuffer(bytearray(base64.b64decode(page.get_attribute("#draw", "data-input-b64"))),
                                dtype=torch.uint8).reshape(1, *run.input_shape)
        from convscope.inspect.attribution import explain

        for f in figs.all():
            maps = explain(run.model, run.preprocess(x_u8), f.get_attribute("data-method"),
                           int(page.text_content("#prediction"))).maps
            constant = bool(np.ptp(maps) == 0)
            assert ("constant" in f.get_attribute("class")) == constant
            assert f.locator("canvas.attrmap").count() == (0 if constant else 1)
        page.evaluate("document.getElementById('attr').scrollIntoView({block: 'end'})")   # verdicts in view
        shot(page, "serve-attribution.png")
    finally:
        audit.unlink()


def fast2_server_dirs(srv):
    yield Path(srv.proc.args[srv.proc.args.index("serve") + 1])
