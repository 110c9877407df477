"""The data behind the pages, in process: canvas preparation by hand-computed cases, the live forward
against a plain forward of the model, the matrix explorer's pattern against ``conv_matrix``."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch
from PIL import Image

from convscope.errors import ConfigError
from convscope.inspect import hook_count
from convscope.conv import conv_matrix
from convscope.web.compute import matrix_data, predict_with_maps, prepare_canvas_image, unit_data
from convscope.web.runs import RunEntry, discover_runs


def test_prepare_canvas_is_predicts_plain_conversion():
    """mode "none": the canvas becomes what `convscope predict --prepare none` makes of the same picture: fitted
    by Lanczos (the reference: Pillow's resize), nothing inverted, transparency composited by ink polarity."""
    from convscope.data.prepare import prepare_image

    a = np.zeros((280, 280), np.uint8)
    a[100:200, 130:140] = 255           # exactly cells (10..19, 13)
    x = prepare_canvas_image(Image.fromarray(a), (1, 28, 28))
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.uint8
    ref = np.asarray(Image.fromarray(a).resize((28, 28), Image.LANCZOS))
    assert np.array_equal(x[0, 0].numpy(), ref)
    assert x[0, 0, 10:20, 13].min() >= 200 and int(x[0, 0].int().sum(0).argmax()) == 13 and x[0, 0, :8].max() <= 1
    light = np.full((56, 56), 255, np.uint8)
    light[:, 28:30] = 0                                         # a dark stroke on white paper: kept as it is
    y = prepare_canvas_image(Image.fromarray(light), (1, 28, 28))[0]
    assert torch.equal(y, prepare_image(light, (1, 28, 28), mode="none").tensor) and int(y[0, 0, 0]) == 255
    rgba = np.zeros((28, 28, 4), np.uint8)                      # transparent except one opaque white pixel
    rgba[5, 6] = [255, 255, 255, 255]
    z = prepare_canvas_image(Image.fromarray(rgba, "RGBA"), (1, 28, 28))[0, 0].numpy()
    assert z[5, 6] == 255 and z.sum() == 255                    # light ink: composited on black
    wide = prepare_canvas_image(Image.fromarray(np.full((10, 40), 200, np.uint8)), (1, 28, 28))[0, 0].numpy()
    assert (wide[:, 0] > 0).sum() == 7 and wide[0].max() == 0   # fitted 28 x 7, centred


def test_predict_with_maps_matches_a_plain_forward(web_run):
    entry = RunEntry("r", web_run)
    run = entry.run
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (1, 1, 28, 28), generator=g, dtype=torch.uint8)
    out = predict_with_maps(entry, x).to_dict()
    with torch.no_grad():
        ref = torch.softmax(run.model(run.preprocess(x)).float(), 1)[0]
        conv1 = run.model.conv1(run.preprocess(x))[0]
        relu1 = run.model.relu1(run.model.bn1(conv1[None]))[0]
    assert np.allclose(out["probabilities"], ref.numpy(), atol=1e-5)
    assert out["prediction"] == run.classes[int(ref.argmax())]
    layers = {li["name"]: li for li in out["layers"]}
    assert "bn1" not in layers and "fc" not in layers and list(layers)[:3] == ["conv1", "relu1", "pool1"]
    for name, ref_t in (("conv1", conv1), ("relu1", relu1)):
        li = layers[name]
        q = np.frombuffer(base64.b64decode(li["data"]), np.uint8).reshape(li["shape"]).astype(np.float64)
        if li["signed"]:
            m = max(-li["lo"], li["hi"])
            back = (q - 127.5) / 127.5 * m
        else:
            back = q / 255 * li["hi"]
        step = (max(-li["lo"], li["hi"]) if li["signed"] else li["hi"]) / 127
        assert np.abs(back - ref_t.numpy()).max() <= step
    assert hook_count(run.model) == 0


@pytest.mark.parametrize("h,w,kh,kw,s,p,d", [(4, 4, 3, 3, 1, 0, 1), (5, 6, 3, 2, 2, 1, 1), (7, 7, 3, 3, 1, 2, 2),
                                              (12, 12, 7, 7, 4, 4, 1), (6, 5, 1, 3, 3, 0, 2)])
def test_matrix_pattern_equals_conv_matrix(h, w, kh, kw, s, p, d):
    m = matrix_data({"h": h, "w": w, "kh": kh, "kw": kw, "stride": s, "padding": p, "dilation": d}).to_dict()
    ref = conv_matrix(torch.arange(1.0, kh * kw + 1).reshape(1, 1, kh, kw), (1, h, w), stride=s, padding=p,
                      dilation=d).toarray()                      # entry = 1 + index of the weight tap
    got = np.zeros(m["shape"])
    for r, c, name in m["entries"]:
        got[r, c] = m["taps"].index(name) + 1
    assert got.shape == ref.shape and np.array_equal(got, ref)
    assert m["output"][0] * m["output"][1] == ref.shape[0]


def test_matrix_and_unit_errors_name_the_argument(web_run):
    with pytest.raises(ConfigError, match="stride: 9 is outside"):
        matrix_data({"stride": "9"})
    with pytest.raises(ConfigError, match=r"input H \(h\): expected an integer, got .four."):
        matrix_data({"h": "four"})
    entry = RunEntry("r", web_run)
    with pytest.raises(ConfigError, match="channels 0..7"):
        unit_data(entry, "conv1", 8)
    d = unit_data(entry, "conv2", 5).to_dict()
    w = entry.run.model.conv2.weight[5].detach()
    assert d["filter"]["shape"] == list(w.shape) and abs(d["filter"]["max_abs"] - float(w.abs().max())) < 1e-6
    assert len(d["topk"]) == 9 and [r["value"] for r in d["topk"]] == sorted((r["value"] for r in d["topk"]),
                                                                            reverse=True)
    assert hook_count(entry.run.model) == 0


def test_discover_runs(runs_dir, tmp_path):
    runs = discover_runs([runs_dir])
    assert sorted(runs) == ["digits4", "digits8"]
    assert list(discover_runs([runs_dir / "digits8"])) == ["digits8"]
    with pytest.raises(ConfigError, match="holds no convscope run"):
        discover_runs([tmp_path])


def test_canvas_uses_predicts_preparation_for_digit_models():
    """mode "mnist": the canvas becomes exactly what `convscope predict` makes of the same picture."""
    from convscope.data.prepare import prepare_image

    a = np.zeros((200, 200), np.uint8)
    a[20:120, 130:140] = 255                      # a "1" drawn off-centre, near the top right
    img = Image.fromarray(a)
    x = prepare_canvas_image(img, (1, 28, 28), "mnist")
    assert torch.equal(x[0], prepare_image(img, (1, 28, 28), mode="mnist").tensor)
    ys, xs = np.nonzero(x[0, 0].numpy())
    assert abs(ys.mean() - 13.5) < 2 and abs(xs.mean() - 13.5) < 2     # centred, as MNIST digits are
    blank = prepare_canvas_image(Image.new("L", (50, 50)), (1, 28, 28), "mnist")
    assert blank.shape == (1, 1, 28, 28) and int(blank.sum()) == 0    # nothing drawn yet: no error
