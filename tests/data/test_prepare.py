"""MNIST-style preparation of a user's image (convscope.data.prepare), each step on constructed images."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from convscope.data import load
from convscope.data.prepare import default_mode, prepare_image
from convscope.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A small digits run (an MLP on 512 images) for the CLI: its model.json says dataset digits."""
    import convscope

    cfg = {"model": "mlp", "train_subset": 512, "batch_size": 64, "epochs": 1, "threads": 1, "precision": "fp32",
           "channels_last": False}
    return convscope.train(cfg, out=tmp_path_factory.mktemp("tiny") / "run", progress=False).path


@pytest.fixture(scope="module")
def test_digits():
    return load("digits", "test")


def com(x: torch.Tensor) -> tuple[float, float]:
    """Centre of mass (row, col) of a (1, H, W) image."""
    a = x[0].double()
    ys = torch.arange(a.shape[0], dtype=torch.float64)
    return float((a.sum(1) * ys).sum() / a.sum()), float((a.sum(0) * ys).sum() / a.sum())


def box(x: torch.Tensor, level: int = 64) -> tuple[int, int]:
    """(height, width) of the bounding box of pixels above ``level``."""
    m = x[0] > level
    rows, cols = m.any(1).nonzero()[:, 0], m.any(0).nonzero()[:, 0]
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def seven(size: int, width: int, offset: tuple[int, int] = (0, 0), ink: int = 255, bg: int = 0) -> np.ndarray:
    """A '7' drawn with a pen of ``width`` px on a ``size`` x ``size`` canvas, moved by ``offset``."""
    img = Image.new("L", (size, size), bg)
    d = ImageDraw.Draw(img)
    s, (ox, oy) = size / 200, offset
    pts = [(50 * s + ox, 40 * s + oy), (150 * s + ox, 40 * s + oy), (90 * s + ox, 170 * s + oy)]
    d.line(pts, fill=ink, width=width, joint="curve")
    return np.asarray(img)


def test_a_digit_shifted_to_a_corner_comes_back_centred_as_in_mnist(test_digits):
    for i in range(40):
        digit = test_digits.images[i]                                   # (1, 28, 28), already MNIST-prepared
        canvas = np.zeros((90, 90), np.uint8)
        canvas[:28, :28] = digit[0].numpy()                             # pushed into the top-left corner
        p = prepare_image(canvas)
        cy, cx = com(p.tensor)
        assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5              # centre of mass on the centre pixel
        assert max(box(p.tensor, 0)) == 20                              # fitted into MNIST's 20 px box
        diff = (p.tensor.int() - digit.int()).abs()                     # back where MNIST put it, to the pixel:
        assert diff.max() <= 3 and diff.float().mean() < 1              # only the ink level is stretched to 255


def test_an_inverted_image_gives_the_same_input_tensor():
    light = seven(200, 14, offset=(-30, 20))
    a = prepare_image(light)
    b = prepare_image(255 - light)                                      # dark strokes on white paper
    assert torch.equal(a.tensor, b.tensor)
    assert b.steps["inverted"] and not a.steps["inverted"]
    assert any("border level 255/255): inverted" in n for n in b.notes)


def test_thin_and_thick_strokes_give_similar_boxes():
    thin, thick = prepare_image(seven(200, 4)), prepare_image(seven(200, 24))
    (ht, wt), (hk, wk) = box(thin.tensor), box(thick.tensor)
    assert max(ht, wt) in (19, 20, 21) and max(hk, wk) in (19, 20, 21)
    assert abs(ht - hk) <= 2 and abs(wt - wk) <= 2
    for p in (thin, thick):
        cy, cx = com(p.tensor)
        assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert thick.tensor.float().mean() > 1.5 * thin.tensor.float().mean()  # the stroke itself is not thinned


def test_aspect_is_kept_and_size_does_not_matter():
    one = np.zeros((300, 300), np.uint8)
    one[40:260, 140:170] = 255                                          # a '1': 220 tall, 30 wide
    p = prepare_image(one)
    assert p.steps["fitted"] == [3, 20]                                 # 30/220 * 20 = 2.7 -> 3
    small = prepare_image(seven(56, 4))
    large = prepare_image(seven(560, 40))
    assert (small.tensor.float() - large.tensor.float()).abs().mean() < 12


def test_grey_paper_is_levelled():
    photo = seven(200, 12, ink=60, bg=190) + np.random.default_rng(0).integers(0, 8, (200, 200), dtype=np.uint8)
    clean = prepare_image(seven(200, 12))
    p = prepare_image(photo)
    assert p.steps["inverted"] and 188 <= p.steps["background"] <= 198 and 55 <= p.steps["ink"] <= 70
    assert int(p.tensor.max()) == 255
    assert (p.tensor.float() - clean.tensor.float()).abs().mean() < 6
    assert any(n.startswith("levelled") for n in p.notes)


def test_specks_are_ignored():
    img = seven(200, 12).copy()
    img[190:193, 5:8] = 255                                              # a speck of dust in the corner
    p = prepare_image(img)
    assert p.steps["specks"] == 1
    assert torch.equal(p.tensor, prepare_image(seven(200, 12)).tensor)


def test_transparent_canvas_strokes_read_like_paper():
    ink = seven(200, 12)
    rgba = np.zeros((200, 200, 4), np.uint8)                            # black strokes on a transparent canvas
    rgba[..., 3] = ink
    p = prepare_image(Image.fromarray(rgba, "RGBA"))
    assert torch.equal(p.tensor, prepare_image(ink).tensor)
    assert any("composited" in n for n in p.notes)


@pytest.mark.parametrize("value", [0, 255, 128])
def test_blank_images_say_no_ink_found(value):
    img = np.full((64, 64), value, np.uint8)
    img[10, 10] = min(255, value + 5)                                   # a flicker is not a digit
    with pytest.raises(DataError, match="no ink found"):
        prepare_image(img)


def test_several_digits_are_flagged_one_is_not():
    pair = np.concatenate([seven(200, 12), seven(200, 12)], axis=1)    # two 7s side by side
    p = prepare_image(pair)
    assert p.steps["marks"] == 2
    assert any("the result is for the whole image" in n for n in p.notes)
    assert prepare_image(seven(200, 12)).steps["marks"] == 1


def test_mode_none_only_resizes_and_mnist_refuses_colour_models(test_digits):
    digit = test_digits.images[0]
    p = prepare_image(digit[0].numpy(), mode="none")
    assert torch.equal(p.tensor, digit) and p.notes == []
    with pytest.raises(ConfigError, match="prepare none"):
        prepare_image(np.zeros((32, 32, 3), np.uint8), (3, 32, 32))
    with pytest.raises(ConfigError, match="not one of"):
        prepare_image(digit[0].numpy(), mode="emnist")


def test_default_mode_follows_the_run_metadata():
    digits = {"dataset": "digits", "input_shape": [1, 28, 28]}
    assert default_mode(digits) == "mnist"
    assert default_mode({"dataset": "mnist", "input_shape": [1, 28, 28]}) == "mnist"
    assert default_mode({"dataset": "fashion-mnist", "input_shape": [1, 28, 28]}) == "none"
    assert default_mode({"dataset": "cifar10", "input_shape": [3, 32, 32]}) == "none"
    assert default_mode({"dataset": "folder:/x/y", "input_shape": [1, 28, 28]}) == "none"
    assert default_mode({**digits, "prepare": "none"}) == "none"          # recorded in model.json: it wins
    with pytest.raises(ConfigError, match="model.json"):
        default_mode({**digits, "prepare": "zca"})


def test_predict_cli_prepares_by_default_shows_and_errors(tiny_run, tmp_path):
    import subprocess
    import sys

    paper = 255 - seven(200, 14, offset=(40, -20))                      # dark ink on white, off-centre
    Image.fromarray(paper).save(tmp_path / "seven.png")
    Image.fromarray(np.full((50, 50), 240, np.uint8)).save(tmp_path / "blank.png")
    Image.fromarray(255 - np.concatenate([seven(200, 12)] * 2, axis=1)).save(tmp_path / "pair.png")
    cmd = [sys.executable, "-m", "convscope", "predict", str(tiny_run)]

    def predict(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=300, check=False)

    r = predict(str(tmp_path / "seven.png"), str(tmp_path / "pair.png"), "--show")
    assert r.returncode == 0, r.stderr
    assert "note: prepared: mnist (the run's default)" in r.stdout
    assert "inverted to light strokes on black" in r.stdout and "centred by the centre of mass" in r.stdout
    assert "the result is for the whole image" in r.stdout
    with Image.open(tmp_path / "seven.prepared.png") as shown:                # what the model saw, exactly
        assert np.array_equal(np.asarray(shown), prepare_image(paper).tensor[0].numpy())
    r = predict(str(tmp_path / "seven.png"), "--prepare", "none")
    assert r.returncode == 0 and "resized 200 x 200 to 28 x 28" in r.stdout and "inverted" not in r.stdout
    r = predict(str(tmp_path / "blank.png"))
    assert r.returncode == 2 and "blank.png: no ink found" in r.stderr
