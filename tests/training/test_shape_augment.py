"""Shape augmentations for handwriting (rotation/scale/aspect, stroke thickness, blur), each against a reference."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

import convscope
from convscope.data.augment import random_affine, random_blur, random_stroke
from convscope.errors import ConfigError


def batch(b: int = 5, c: int = 1, h: int = 11, w: int = 11, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def bilinear(img: np.ndarray, y: float, x: float) -> float:
    """Sample (H, W) at pixel coordinates (y, x), zero outside: the textbook bilinear formula."""
    y0, x0 = math.floor(y), math.floor(x)
    total = 0.0
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < img.shape[0] and 0 <= xx < img.shape[1]:
                total += wy * wx * img[yy, xx]
    return total


@pytest.mark.parametrize("degrees,scale,aspect", [(30.0, 0.0, 0.0), (0.0, 0.5, 0.0), (0.0, 0.0, 0.4), (20.0, 0.3, 0.3)])
def test_random_affine_matches_a_pixel_by_pixel_rotation_and_zoom(degrees, scale, aspect):
    x = batch()
    out = random_affine(x, gen(), degrees, scale, aspect)
    u = torch.rand(3, x.shape[0], generator=gen()) * 2 - 1          # the same draws, replayed
    b, _, h, w = x.shape
    for i in range(b):
        th = float(u[0, i]) * degrees * math.pi / 180
        zoom, stretch = (1 + scale) ** float(u[1, i]), (1 + aspect) ** float(u[2, i])
        sx, sy = zoom * math.sqrt(stretch), zoom / math.sqrt(stretch)
        ref = np.zeros((h, w))
        for r in range(h):
            for c in range(w):
                xo, yo = (2 * c + 1) / w - 1, (2 * r + 1) / h - 1          # output pixel centre, in [-1, 1]
                # undo "scale by (sx, sy), then rotate by th": rotate by -th, then divide by the scale
                xr, yr = math.cos(th) * xo + math.sin(th) * yo, -math.sin(th) * xo + math.cos(th) * yo
                xi, yi = xr / sx, yr / sy
                ref[r, c] = bilinear(x[i, 0].double().numpy(), ((yi + 1) * h - 1) / 2, ((xi + 1) * w - 1) / 2)
        np.testing.assert_allclose(out[i, 0].numpy(), ref, atol=1e-5)


def test_random_affine_grows_and_turns_a_bar_as_drawn():
    x = torch.zeros(1, 1, 41, 41)
    x[0, 0, 10:31, 19:22] = 1.0                                           # a vertical bar, 21 px tall
    g = gen(3)
    u = torch.rand(3, 1, generator=gen(3)) * 2 - 1
    out = random_affine(x, g, 0.0, 0.5, 0.0)[0, 0]
    zoom = 1.5 ** float(u[1, 0])
    rows = (out > 0.5).any(1).nonzero()[:, 0]
    assert abs((rows[-1] - rows[0] + 1) - 21 * zoom) <= 2
    turned = random_affine(x, gen(4), 90.0, 0.0, 0.0)[0, 0]
    angle = float(torch.rand(3, 1, generator=gen(4))[0, 0] * 2 - 1) * 90
    ys, xs = (turned > 0.5).nonzero(as_tuple=True)
    slope = np.polyfit(ys.double().numpy(), xs.double().numpy(), 1)[0]     # dx/dy of the bar's axis
    assert abs(abs(math.degrees(math.atan(slope))) - abs(angle)) < 5


def test_switched_off_augmentations_return_the_batch_and_draw_nothing():
    x = batch()
    g = gen()
    state = g.get_state()
    assert random_affine(x, g, 0.0, 0.0, 0.0) is x
    assert random_stroke(x, g, 0.0) is x
    assert random_blur(x, g, 0.0) is x
    assert torch.equal(g.get_state(), state)                                # the main job's random stream is intact


def test_random_stroke_blends_with_grey_dilation_and_erosion():
    x = batch(b=8)
    out = random_stroke(x, gen(), 0.7)
    t = (torch.rand(8, generator=gen()) * 2 - 1) * 0.7
    for i in range(8):
        img = x[i, 0].double().numpy()
        other = (ndimage.grey_dilation if t[i] > 0 else ndimage.grey_erosion)(img, size=(3, 3), mode="nearest")
        ref = img + abs(float(t[i])) * (other - img)
        np.testing.assert_allclose(out[i, 0].numpy(), ref, atol=1e-6)
    assert (t > 0).any() and (t < 0).any()                                  # both directions were exercised


def test_random_blur_matches_scipy_gaussian_filter():
    x = batch(b=6, c=2, h=16, w=13)
    out = random_blur(x, gen(), 1.5)
    sigma = torch.rand(6, generator=gen()) * 1.5
    r = max(2, int(2 * 1.5 + 0.5))
    for i in range(6):
        for c in range(2):
            s = max(float(sigma[i]), 1e-3)
            ref = ndimage.gaussian_filter(x[i, c].double().numpy(), s, mode="constant", truncate=r / s)
            np.testing.assert_allclose(out[i, c].numpy(), ref, atol=1e-5)


def test_config_keys_default_off_and_are_validated():
    """Geometric ones off; stroke and blur resolve to 0.6 / 0.8 for handwritten digits only (chosen by
    bench/handwriting.py), 0 elsewhere; a run recorded before the keys existed resumes with them off."""
    from convscope.training.config import config_from_dict, recorded_config, resolve

    cfg = convscope.TrainConfig()
    assert (cfg.rotate, cfg.scale, cfg.aspect, cfg.stroke, cfg.blur) == (0.0, 0.0, 0.0, None, None)
    digits = resolve(cfg, hflip_ok=False, device="cpu", native_bf16=False)
    fashion = resolve(config_from_dict({"dataset": "fashion-mnist"}), hflip_ok=True, device="cpu", native_bf16=False)
    assert (digits.stroke, digits.blur) == (0.6, 0.8) and (fashion.stroke, fashion.blur) == (0.0, 0.0)
    explicit = resolve(config_from_dict({"stroke": 0.0}), hflip_ok=False, device="cpu", native_bf16=False)
    assert (explicit.stroke, explicit.blur) == (0.0, 0.8)
    old = recorded_config({"dataset": "digits"}, "config.json")   # a 0.1 config.json has no such keys
    assert (old.stroke, old.blur) == (0.0, 0.0)

    for key, bad in (("rotate", -1.0), ("stroke", 1.5), ("blur", -0.1), ("scale", 20.0)):
        with pytest.raises(ConfigError, match=key):
            config_from_dict({key: bad})


def test_training_with_shape_augmentation_learns(tiny, tmp_path):
    run = convscope.train({**tiny, "epochs": 3, "rotate": 10.0, "scale": 0.15, "aspect": 0.2, "stroke": 0.5,
                           "blur": 0.5}, out=tmp_path / "run", progress=False)
    assert run.config.rotate == 10.0 and run.summary["test_accuracy"] > 0.6


def test_the_shifted_3x3_extremes_equal_max_pooling():
    from convscope.data.augment import _extreme3x3

    x = torch.randn(3, 2, 9, 7, generator=gen())                           # negative values: the border counts
    torch.testing.assert_close(_extreme3x3(x, torch.maximum, float("-inf")), torch.nn.functional.max_pool2d(x, 3, 1, 1),
                               rtol=0, atol=0)
    torch.testing.assert_close(_extreme3x3(x, torch.minimum, float("inf")), -torch.nn.functional.max_pool2d(-x, 3, 1,
                                                                                                            1),
                               rtol=0, atol=0)
