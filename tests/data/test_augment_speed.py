"""The one-gather uint8 batch must equal, bit for bit, the loop's float pipeline of augment.py functions."""

import pytest
import torch

from convscope.data.augment import cutout, random_hflip, random_translate
from convscope.data.augment_speed import fused_batch, pad_store
from convscope.data.normalize import Normalization


def reference_batch(images, idx, norm, gen, translate, hflip, cut, channels_last):
    """The training loop's batch as written in convscope/training/loop.py (Trainer._batch)."""
    x = images[idx].to(torch.float32).div_(255.0)
    x = random_translate(x, translate, gen)
    if hflip:
        x = random_hflip(x, gen)
    x = cutout(x, cut, gen)
    x = norm.normalize(x)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("c,translate,pad,hflip,cut,channels_last", [
    (1, 2, 2, True, 0, True), (1, 2, 2, False, 0, True), (1, 0, 0, True, 8, False), (3, 1, 3, True, 5, True),
    (3, 3, 3, False, 7, False), (1, 2, 2, True, 12, True),
])
def test_fused_batch_is_bit_identical_to_the_float_pipeline(c, translate, pad, hflip, cut, channels_last):
    images = torch.randint(0, 256, (50, c, 12, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(c))
    norm = Normalization.of(images)
    store = pad_store(images, pad)
    g_ref, g_new = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for step in range(4):
        idx = torch.randperm(50, generator=torch.Generator().manual_seed(step))[:17]
        ref = reference_batch(images, idx, norm, g_ref, translate, hflip, cut, channels_last)
        new = fused_batch(store, pad, idx, norm, g_new, translate, hflip, cut, channels_last)
        assert torch.equal(ref, new)
        assert ref.stride() == new.stride()
    assert torch.equal(g_ref.get_state(), g_new.get_state())  # same draws: a resumed run continues identically


def test_fused_batch_shifts_and_mirrors_by_hand():
    img = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4)
    norm = Normalization((0.0,), (1.0,))
    store = pad_store(img, 1)
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(60):
        state = gen.get_state()
        off = torch.randint(0, 3, (2, 1), generator=gen)              # what fused_batch draws first
        flip = bool(torch.rand(1, generator=gen)[0] < 0.5)
        gen.set_state(state)
        x = fused_batch(store, 1, torch.tensor([0]), norm, gen, translate=1, hflip=True)[0, 0] * 255
        dy, dx = 1 - int(off[0, 0]), 1 - int(off[1, 0])                # content moves down/right by (dy, dx)
        want = torch.zeros(4, 4)
        for r in range(4):
            for q in range(4):
                if 0 <= r - dy < 4 and 0 <= q - dx < 4:
                    want[r, q] = img[0, 0, r - dy, q - dx]
        if flip:
            want = want.flip(1)
        assert torch.allclose(x, want, atol=1e-4)
        seen.add((dy, dx, flip))
    assert len(seen) >= 12                                             # most of the 18 cases were exercised


def test_translate_beyond_the_padding_is_refused():
    with pytest.raises(ValueError, match="padding"):
        fused_batch(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), 1, torch.tensor([0]), Normalization((0.0,), (1.0,)),
                    torch.Generator(), translate=2)
