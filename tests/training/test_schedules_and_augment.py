import math

import pytest
import torch

from convscope.data.augment import cutout, random_hflip, random_translate
from convscope.training.config import config_from_dict
from convscope.training.optim import lr_at


def test_onecycle_values():
    cfg = config_from_dict({"schedule": "onecycle", "lr": 0.4, "epochs": 4})
    spe = 25  # 100 steps in all; peak at step 25
    assert lr_at(cfg, 0, spe) == 0.0
    assert lr_at(cfg, 10, spe) == pytest.approx(0.4 * 10 / 25)
    assert lr_at(cfg, 25, spe) == pytest.approx(0.4)
    assert lr_at(cfg, 70, spe) == pytest.approx(0.4 * 30 / 75)
    assert lr_at(cfg, 99, spe) == pytest.approx(0.4 / 75)


def test_step_cosine_constant_and_warmup():
    step = config_from_dict({"schedule": "step", "lr": 1.0, "step_gamma": 0.7, "step_epochs": 2, "epochs": 10})
    assert [lr_at(step, e * 10, 10) for e in range(5)] == pytest.approx([1, 1, 0.7, 0.7, 0.49])
    cos = config_from_dict({"schedule": "cosine", "lr": 2.0, "epochs": 10})
    assert lr_at(cos, 0, 10) == 2.0 and lr_at(cos, 50, 10) == pytest.approx(1.0)
    assert lr_at(cos, 75, 10) == pytest.approx(1.0 * (1 + math.cos(math.pi * 0.75)))
    warm = config_from_dict({"schedule": "constant", "lr": 1.0, "warmup_epochs": 1.0, "epochs": 5})
    assert [lr_at(warm, s, 4) for s in (0, 1, 3, 4, 19)] == pytest.approx([0.25, 0.5, 1.0, 1.0, 1.0])


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_translate_is_an_exact_zero_filled_shift():
    x = torch.rand(64, 2, 9, 7) + 0.1  # strictly positive, so zero fill is recognisable
    out = random_translate(x, 2, _gen())
    seen = set()
    for i in range(len(x)):
        found = None
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = torch.zeros_like(x[i])
                src = x[i][:, max(0, -dy):9 - max(0, dy), max(0, -dx):7 - max(0, dx)]
                ref[:, max(0, dy):max(0, dy) + src.shape[1], max(0, dx):max(0, dx) + src.shape[2]] = src
                if torch.equal(ref, out[i]):
                    found = (dy, dx)
        assert found is not None, f"image {i} is not a shifted copy"
        seen.add(found)
    assert len(seen) > 15  # 25 possible shifts, independently drawn per image


def test_hflip_flips_about_half_and_nothing_else():
    x = torch.rand(400, 1, 5, 5)
    out = random_hflip(x, _gen(1))
    flipped = torch.tensor([torch.equal(o, xi.flip(2)) for o, xi in zip(out, x)])
    same = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x)])
    assert bool((flipped | same).all()) and 150 < int(flipped.sum()) < 250


def test_cutout_zeroes_one_square_only():
    x = torch.ones(200, 3, 12, 12)
    out = cutout(x, 4, _gen(2))
    for o in out:
        zero = (o == 0).all(0)                   # (H, W): same square in every channel
        assert bool(((o == 0) | (o == 1)).all())
        ys, xs = torch.nonzero(zero, as_tuple=True)
        assert 1 <= len(ys) <= 16
        assert int(ys.max() - ys.min()) < 4 and int(xs.max() - xs.min()) < 4
        assert len(ys) == (int(ys.max() - ys.min()) + 1) * (int(xs.max() - xs.min()) + 1)  # a filled rectangle


def test_augmentation_is_reproducible_from_the_generator():
    x = torch.rand(8, 1, 10, 10)
    a = cutout(random_hflip(random_translate(x, 3, _gen(5)), _gen(6)), 3, _gen(7))
    b = cutout(random_hflip(random_translate(x, 3, _gen(5)), _gen(6)), 3, _gen(7))
    assert torch.equal(a, b)
