"""Batched tensor augmentation: pure functions of (batch, generator), one call per batch, no per-sample loop.

All take float images (B, C, H, W) and a ``torch.Generator`` (on the batch's device) and return a new batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_translate(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by an independent integer (dy, dx) in [-max_shift, max_shift], filling with zeros.

    Done as zero padding followed by a per-image crop, gathered with index arithmetic in one shot.
    """
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s))                                          # (B, C, H+2s, W+2s)
    off = torch.randint(0, 2 * s + 1, (2, b), generator=gen, device=x.device)  # crop corner per image
    rows = (off[0][:, None] + torch.arange(h, device=x.device))              # (B, H)
    cols = (off[1][:, None] + torch.arange(w, device=x.device))              # (B, W)
    idx_r = rows[:, None, :, None].expand(b, c, h, w + 2 * s)
    out = padded.gather(2, idx_r)                                             # (B, C, H, W+2s)
    idx_c = cols[:, None, None, :].expand(b, c, h, w)
    return out.gather(3, idx_c)                                               # (B, C, H, W)


def random_hflip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Zero one ``size`` x ``size`` square per image, centred anywhere (it may be clipped at the border)."""
    if size <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=gen, device=x.device)
    cx = torch.randint(0, w, (b,), generator=gen, device=x.device)
    y0, x0 = cy - size // 2, cx - size // 2
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = (ys >= y0[:, None]) & (ys < (y0 + size)[:, None])                  # (B, H)
    in_x = (xs >= x0[:, None]) & (xs < (x0 + size)[:, None])                  # (B, W)
    mask = in_y[:, :, None] & in_x[:, None, :]                                # (B, H, W)
    return x.masked_fill(mask[:, None], 0.0)
