"""The one image -> model input path (convscope.data.image + prepare_image) on real files written with Pillow:
16-bit PNGs keep their values (issue 22: the folder loader clipped them to white), EXIF orientation is applied
(a phone photo was read sideways), palette images and transparency composited by ink polarity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from convscope.data import load
from convscope.data.image import read_image, to_8bit
from convscope.data.prepare import prepare_image

ORIENTATION = 0x0112
# the transpose that *stores* an upright picture so that EXIF orientation N turns it back (inverse of Pillow's
# exif_transpose table)
STORE = {2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180], 4: [Image.Transpose.FLIP_TOP_BOTTOM],
         5: [Image.Transpose.TRANSPOSE], 6: [Image.Transpose.ROTATE_90], 7: [Image.Transpose.TRANSVERSE],
         8: [Image.Transpose.ROTATE_270]}


@pytest.fixture(scope="module")
def digit() -> np.ndarray:
    """A real test digit, (28, 28) uint8, light strokes on black; asymmetric, so any turn shows."""
    return load("digits", "test").images[0, 0].numpy()


def _stored(img: Image.Image, orientation: int) -> Image.Image:
    for t in STORE[orientation]:
        img = img.transpose(t)
    return img


# ---- 16-bit -----------------------------------------------------------------------------------------------------

def test_16bit_png_folder_keeps_its_pixel_values(tmp_path):
    rng = np.random.default_rng(0)
    expect = {}
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            v = rng.integers(0, 256, (9, 7)).astype(np.uint16)
            Image.fromarray(v * 257).save(tmp_path / cls / f"{i}.png")        # 16-bit PNG, full 0..65535 range
            expect[(cls, i)] = v.astype(np.uint8)
    with Image.open(tmp_path / "a" / "0.png") as im:
        assert im.mode == "I;16"                                               # really a 16-bit file
    ds = load(f"folder:{tmp_path}", "all")
    assert ds.shape == (1, 9, 7)
    np.testing.assert_array_equal(ds.images[0, 0].numpy(), expect[("a", 0)])  # before: 99% of pixels were 255
    np.testing.assert_array_equal(ds.images[5, 0].numpy(), expect[("b", 2)])
    assert (ds.images == 255).float().mean() < 0.05


@pytest.mark.parametrize("mode, values, expect", [
    ("I;16", [0, 257, 32768, 65535], [0, 1, 128, 255]),             # nominal 16-bit range, rounded
    ("I;16B", [0, 514, 65535, 1000], [0, 2, 255, 4]),
    ("I", [0, 65535, 257 * 100, 3], [0, 255, 100, 0]),               # how older Pillow read 16-bit PNGs
    ("I", [-100, 0, 60, 300], [0, 64, 102, 255]),                     # outside 0..65535: its own range
    ("F", [0.0, 0.5, 1.0, 0.25], [0, 128, 255, 64]),                  # [0, 1] floats by 255
])
def test_deep_modes_scale_by_their_range_not_clip(mode, values, expect):
    dtype = {"I;16": "<u2", "I;16B": ">u2", "I": "<i4", "F": "<f4"}[mode]
    img = Image.frombytes(mode, (4, 1), np.array([values], dtype=dtype).tobytes())
    assert img.mode == mode
    notes: list[str] = []
    out = to_8bit(img, 1, notes)
    assert out.mode == "L" and np.asarray(out)[0].tolist() == expect
    assert notes and notes[0].startswith(f"scaled {mode} pixels")


# ---- EXIF orientation ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_rotated_png_reads_upright(tmp_path, digit, orientation):
    upright = Image.fromarray(255 - digit).resize((84, 56))                   # not square: a turn swaps W and H
    upright.save(tmp_path / "upright.png")
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    _stored(upright, orientation).save(tmp_path / "turned.png", exif=exif)
    for mode in ("none", "mnist"):
        a = prepare_image(tmp_path / "upright.png", mode=mode)
        b = prepare_image(tmp_path / "turned.png", mode=mode)
        assert torch.equal(a.tensor, b.tensor), (mode, orientation)
        assert f"turned upright (EXIF orientation {orientation})" in b.notes
    # the folder loader too, the size it chooses included (the header's W x H turned)
    for name in ("upright", "turned"):
        (tmp_path / "ds" / name / "c").mkdir(parents=True)
        (tmp_path / name).with_suffix(".png").rename(tmp_path / "ds" / name / "c" / "x.png")
        (tmp_path / "ds" / name / "d").mkdir()
        upright.save(tmp_path / "ds" / name / "d" / "y.png")
    a, b = (load(f"folder:{tmp_path / 'ds' / n}", "all") for n in ("upright", "turned"))
    assert a.shape == b.shape == (1, 56, 84) and torch.equal(a.images, b.images)


def test_exif_rotated_jpeg_reads_upright(tmp_path, digit):
    upright = Image.fromarray(255 - digit).resize((112, 112), Image.BILINEAR)
    upright.save(tmp_path / "upright.jpg", quality=100, subsampling=0)
    exif = Image.Exif()
    exif[ORIENTATION] = 6                                                     # a phone held upright
    _stored(upright, 6).save(tmp_path / "phone.jpg", quality=100, subsampling=0, exif=exif)
    a = prepare_image(tmp_path / "upright.jpg").tensor.float()
    b = prepare_image(tmp_path / "phone.jpg").tensor.float()
    sideways = prepare_image(np.asarray(Image.open(tmp_path / "phone.jpg"))).tensor.float()  # EXIF ignored
    assert (a - b).abs().mean() < 2 < 20 < (a - sideways).abs().mean()


# ---- palette and transparency -------------------------------------------------------------------------------------

def test_palette_png_reads_like_its_rgb(tmp_path, digit):
    rgb = np.stack([255 - digit, np.full_like(digit, 40), digit], -1)         # a coloured picture
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as im:
        assert im.mode == "P"
        as_rgb = np.asarray(im.convert("RGB"))                                 # the palette's own colours
    for c in (1, 3):
        p = prepare_image(tmp_path / "p.png", (c, 28, 28), mode="none")
        ref = prepare_image(as_rgb, (c, 28, 28), mode="none")
        assert torch.equal(p.tensor, ref.tensor)
    assert "converted P to grayscale" in prepare_image(tmp_path / "p.png", mode="none").notes


def test_palette_png_with_a_transparent_index(tmp_path, digit):
    """Black ink (index 1) on a transparent index 0: the palette's tRNS honoured, composited as ink on paper."""
    ink = digit > 127
    p = Image.frombytes("P", (28, 28), ink.astype(np.uint8).tobytes())
    p.putpalette([0, 0, 0, 0, 0, 0] + [0] * 762)
    p.save(tmp_path / "t.png", transparency=0)
    paper = np.where(ink, 0, 255).astype(np.uint8)                            # the same ink on white paper
    for mode in ("none", "mnist"):
        assert torch.equal(prepare_image(tmp_path / "t.png", mode=mode).tensor, prepare_image(paper, mode=mode).tensor)


@pytest.mark.parametrize("ink_value, background", [(0, 255), (255, 0), (30, 255), (220, 0)])
def test_alpha_is_composited_opposite_to_the_ink(tmp_path, digit, ink_value, background):
    """The opaque pixels' mean luminance picks the background: dark ink on white, light ink on black; the
    transparent file then equals its opaque version exactly (RGBA and LA)."""
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3] = ink_value
    rgba[..., 3] = digit                                                       # the digit is the alpha
    Image.fromarray(rgba).save(tmp_path / "rgba.png")                         # (H, W, 4) uint8: RGBA
    Image.fromarray(np.ascontiguousarray(rgba[..., [0, 3]])).save(tmp_path / "la.png")   # (H, W, 2): LA
    a = digit.astype(np.float64) / 255
    opaque = np.round(ink_value * a + background * (1 - a)).astype(np.uint8)   # alpha compositing by hand
    for name in ("rgba.png", "la.png"):
        p = prepare_image(tmp_path / name, mode="none")
        assert np.abs(p.tensor[0].numpy().astype(int) - opaque).max() <= 1, name
        side = "white" if background == 255 else "black"
        assert any(n.startswith(f"composited the transparent background on {side}") for n in p.notes)
    assert not any("composited" in n for n in prepare_image(np.dstack([rgba[..., :3], np.full_like(digit, 255)]),
                                                            mode="none").notes)   # all opaque: untouched


def test_read_image_refuses_by_the_same_rules_for_bytes(tmp_path):
    from convscope.data.image import ImageFormatError, ImageTooLarge
    from convscope.errors import DataError

    buf = tmp_path / "x.gif"
    Image.new("L", (8, 8)).save(buf, format="GIF")
    with pytest.raises(ImageFormatError, match="GIF"):
        read_image(buf.read_bytes(), name="upload")
    Image.new("L", (100, 100)).save(tmp_path / "big.png")
    with pytest.raises(ImageTooLarge, match="max_pixels"):
        read_image((tmp_path / "big.png").read_bytes(), max_pixels=5000)
    with pytest.raises(DataError, match="upload: not a readable image"):
        read_image(b"not an image", name="upload")
    assert read_image(buf.read_bytes(), formats=("GIF",)).size == (8, 8)


def _png_header(w: int, h: int) -> bytes:
    """A PNG that announces w x h pixels (signature, IHDR, IEND): nothing to decode."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")


def test_huge_headers_and_non_images_get_convscopes_own_words(tmp_path):
    """Past ~179 M pixels Pillow refuses inside Image.open, before our max_pixels check: the message must still be
    ours (the limit the user can set), and a file that is no image says what it starts with, not a file object."""
    from convscope.data.image import ImageTooLarge
    from convscope.errors import DataError

    for w, h in ((100_000, 100_000), (9000, 9000)):
        (tmp_path / "huge.png").write_bytes(_png_header(w, h))
        with pytest.raises(ImageTooLarge, match=f"{w * h:,} pixels|{w} x {h} pixels") as e:
            read_image(tmp_path / "huge.png")
        assert "max_pixels=67,108,864" in str(e.value) and "178956970" not in str(e.value)
    (tmp_path / "text.png").write_text("hello, not a picture")
    with pytest.raises(DataError, match=r"text.png: not a readable image: not PNG or JPEG \(it starts with b'hel"):
        read_image(tmp_path / "text.png")
    with pytest.raises(DataError, match=r"upload: .*it starts with b'hello, n'") as e:
        read_image(b"hello, not a picture", name="upload")
    assert "BytesIO" not in str(e.value)
