"""The training batch straight from the uint8 store: translate + mirror + cutout as ONE gather on uint8.

``fused_batch`` returns exactly (bit for bit) what the loop's ``_batch`` returns with the functions of
augment.py — same generator draws in the same order, same float arithmetic — but it gathers 1-byte pixels
from a store padded once, instead of converting to float, padding, gathering rows, gathering columns,
mirroring and masking (five float tensors per batch). tests/data/test_augment_speed.py checks the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .normalize import Normalization


def pad_store(images_u8: torch.Tensor, pad: int) -> torch.Tensor:
    """The whole uint8 dataset (N, C, H, W) zero-padded once to (N, C, H + 2 pad, W + 2 pad)."""
    return F.pad(images_u8, (pad, pad, pad, pad)) if pad > 0 else images_u8


def fused_batch(store: torch.Tensor, pad: int, idx: torch.Tensor, norm: Normalization, gen: torch.Generator,
                translate: int = 0, hflip: bool = False, cutout: int = 0,
                channels_last: bool = False) -> torch.Tensor:
    """Normalized float batch (B, C, H, W) for images ``idx`` of a store made by ``pad_store(images, pad)``.

    Randomness, in the order augment.py draws it: crop corners ``randint(0, 2 t + 1, (2, B))`` (t = translate),
    flip coins ``rand(B) < 0.5``, cutout centres ``randint(0, H, (B,))`` then ``randint(0, W, (B,))``."""
    if translate > pad:
        raise ValueError(f"fused_batch: translate {translate} exceeds the store's padding {pad}")
    _, c, hp, wp = store.shape
    h, w = hp - 2 * pad, wp - 2 * pad
    b, dev = len(idx), store.device
    ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
    if translate > 0:
        off = torch.randint(0, 2 * translate + 1, (2, b), generator=gen, device=dev) + (pad - translate)  # (2, B)
    else:
        off = torch.full((2, b), pad, device=dev, dtype=torch.long)
    rows = off[0][:, None] + ar_h                                            # (B, H): source row of each row
    cols = off[1][:, None] + ar_w                                            # (B, W): source column
    if hflip:
        flip = torch.rand(b, generator=gen, device=dev) < 0.5
        cols = torch.where(flip[:, None], cols.flip(1), cols)                # mirror = read columns backwards
    flat = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w)      # (B, 1, H*W) into each padded image
    x = store[idx].view(b, c, hp * wp).gather(2, flat.expand(b, c, h * w)).view(b, c, h, w)  # uint8 (B, C, H, W)
    if cutout > 0:
        cy = torch.randint(0, h, (b,), generator=gen, device=dev)
        cx = torch.randint(0, w, (b,), generator=gen, device=dev)
        y0, x0 = cy - cutout // 2, cx - cutout // 2
        in_y = (ar_h[None] >= y0[:, None]) & (ar_h[None] < (y0 + cutout)[:, None])   # (B, H)
        in_x = (ar_w[None] >= x0[:, None]) & (ar_w[None] < (x0 + cutout)[:, None])   # (B, W)
        x = x.masked_fill((in_y[:, :, None] & in_x[:, None, :])[:, None], 0)
    x = norm.normalize(x.to(torch.float32).div_(255.0))                      # the loop's exact float steps
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
