"""Image parameterizations: what the optimizer changes, and how it becomes an image on the [0, 1] scale.

Both end in a sigmoid, so every image lies in the data's pixel range whatever the optimizer does; any channel
count works (grayscale, RGB, multispectral). RGB Fourier images also decorrelate colour (Olah et al. 2017).
All random draws come from the ``torch.Generator`` passed in: no global RNG is read or changed.
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError

# Square root of the colour correlation of ImageNet's RGB (Lucent / Lucid): maps decorrelated to RGB space.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()


class ImageParam:
    """Base: ``params`` are the leaf tensors to optimize; calling it gives (B, C, H, W) on [0, 1]."""

    params: list[torch.Tensor]
    lr: float  # a good Adam step size for this parameterization

    def __call__(self) -> torch.Tensor:
        raise NotImplementedError


class PixelParam(ImageParam):
    """One free value per pixel and channel, through a sigmoid. Starts near mid-grey."""

    lr = 0.05

    def __init__(self, shape: tuple[int, int, int, int], generator: torch.Generator, sd: float = 0.01) -> None:
        self.raw = (torch.randn(shape, generator=generator) * sd).requires_grad_()  # (B, C, H, W) logits
        self.params = [self.raw]

    def __call__(self) -> torch.Tensor:
        return torch.sigmoid(self.raw)


class FourierParam(ImageParam):
    """A spectrum scaled by 1 / frequency (so low frequencies move first), inverse real FFT, for 3 channels a
    decorrelated colour basis, then a sigmoid. Images are smoother and less adversarial than pixels."""

    lr = 0.05

    def __init__(self, shape: tuple[int, int, int, int], generator: torch.Generator, sd: float = 0.01,
                 decay_power: float = 1.0, decorrelate: bool = True) -> None:
        b, c, h, w = shape
        self.hw = (h, w)
        fy = torch.fft.fftfreq(h).view(-1, 1)
        fx = torch.fft.rfftfreq(w).view(1, -1)
        freqs = torch.sqrt(fx ** 2 + fy ** 2)                                  # (H, W // 2 + 1)
        self.scale = (1.0 / freqs.clamp_min(1.0 / max(h, w)) ** decay_power)  # (H, W // 2 + 1)
        # Lucid's constant: the 1/f scale makes the ortho-normalized inverse FFT ~4x too loud at init.
        self.scale = (self.scale / 4.0).view(1, 1, *freqs.shape, 1)
        self.spectrum = (torch.randn(b, c, *freqs.shape, 2, generator=generator) * sd).requires_grad_()
        self.decorrelate = decorrelate and c == 3
        self.params = [self.spectrum]

    def __call__(self) -> torch.Tensor:
        spec = torch.view_as_complex(self.scale * self.spectrum)             # (B, C, H, W // 2 + 1) complex
        x = torch.fft.irfftn(spec, s=self.hw, dim=(2, 3), norm="ortho")       # (B, C, H, W)
        if self.decorrelate:
            x = torch.einsum("bchw,dc->bdhw", x, _COLOR.to(x.dtype))
        return torch.sigmoid(x)


PARAMS = {"pixel": PixelParam, "fourier": FourierParam}


def make_param(kind: str, shape: tuple[int, int, int, int], generator: torch.Generator) -> ImageParam:
    if kind not in PARAMS:
        raise ConfigError(f"param: {kind!r} is not a parameterization; choose from {', '.join(PARAMS)}")
    if min(shape[2:]) < 2 or math.prod(shape) == 0:
        raise ConfigError(f"param: image shape {shape[1:]} is too small to optimize")
    return PARAMS[kind](shape, generator)
