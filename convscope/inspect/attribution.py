"""Attribution maps through Captum (a dependency, not re-derived): which input pixels a prediction rests on.

``attribute(model, inputs, method)`` -> (N, H, W) float32, one map per image, for ``target`` (default: the
predicted class). Captum returns (N, C, H, W); the channel reduction is fixed per method and documented in
``METHODS`` so a direct Captum call plus that reduction gives the same numbers. Randomness (SmoothGrad's noise)
is drawn under ``torch.random.fork_rng`` with ``seed``: reproducible, and the global RNG is left as it was.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models.probe import eval_mode
from .hooks import resolve_layers

# method -> how Captum's (N, C, H, W) becomes (N, H, W)
METHODS = {
    "saliency": "Saliency (|gradient|), max over channels (Simonyan et al. 2014)",
    "smoothgrad": "NoiseTunnel(Saliency) smoothgrad, 16 samples, noise sd 0.15 x input range; max over channels",
    "integrated_gradients": "IntegratedGradients from a zero baseline, 32 steps; sum over channels",
    "gradcam": "LayerGradCam at `layer` (default: the last Conv2d), ReLU; bilinear upsampling to the input",
    "occlusion": "Occlusion, zero patches of about H/7 pixels, stride half a patch; mean over channels",
    "guided_gradcam": "GuidedGradCam at `layer` (guided backprop x Grad-CAM, nearest upsampling); sum over channels",
}
AttributionFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], np.ndarray]


def last_conv(model: nn.Module) -> str:
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ConfigError("layer: the model has no Conv2d layer for Grad-CAM; give layer=NAME of a layer with "
                          "spatial output")
    return convs[-1]


def predicted(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with eval_mode(model), torch.no_grad():
        return model(inputs).argmax(1)


def occlusion_window(shape: tuple[int, ...]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(sliding window, strides) for Captum's Occlusion on a (C, H, W) input."""
    c, h, w = shape
    s = max(2, round(min(h, w) / 7))
    return (c, s, s), (c, max(1, s // 2), max(1, s // 2))


def captum_call(model: nn.Module, inputs: torch.Tensor, method: str, target: torch.Tensor,
                layer: str | None = None, seed: int = 0) -> torch.Tensor:
    """The Captum call behind each method, raw: (N, C, H, W), or Grad-CAM's (N, 1, h, w) at the layer."""
    from captum import attr

    x = inputs.detach().clone().requires_grad_()      # Captum warns (an error in strict tests) otherwise
    modules = dict(model.named_modules())
    if method in ("gradcam", "guided_gradcam"):
        layer = resolve_layers(model, [layer or last_conv(model)])[0]
    if method == "saliency":
        return attr.Saliency(model).attribute(x, target=target)
    if method == "smoothgrad":
        sd = float(inputs.max() - inputs.min()) * 0.15
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return attr.NoiseTunnel(attr.Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=16,
                                                                    stdevs=sd, target=target)
    if method == "integrated_gradients":
        return attr.IntegratedGradients(model).attribute(x, target=target, n_steps=32)
    if method == "gradcam":
        return attr.LayerGradCam(model, modules[layer]).attribute(x, target=target, relu_attributions=True)
    if method == "occlusion":
        window, strides = occlusion_window(tuple(inputs.shape[1:]))
        return attr.Occlusion(model).attribute(x, sliding_window_shapes=window, strides=strides, target=target)
    if method == "guided_gradcam":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            return attr.GuidedGradCam(model, modules[layer]).attribute(x, target=target)
    raise ConfigError(f"method: {method!r} is not one of {', '.join(METHODS)}")


def reduce_map(raw: torch.Tensor, method: str, size: tuple[int, int] | None) -> torch.Tensor:
    """Captum's output -> (N, H, W) by the method's documented reduction (``size``: Grad-CAM's upsampling)."""
    if method == "gradcam":
        if size is not None and tuple(raw.shape[2:]) != tuple(size):
            raw = F.interpolate(raw, size=size, mode="bilinear", align_corners=False)
        return raw[:, 0]
    if method in ("saliency", "smoothgrad"):
        return raw.amax(1)
    if method == "occlusion":
        return raw.mean(1)
    return raw.sum(1)


def attribute(model: nn.Module, inputs: torch.Tensor, method: str | AttributionFn, target: int | torch.Tensor |
              None = None, layer: str | None = None, upsample: bool = True, seed: int = 0) -> np.ndarray:
    """(N, H, W) float32 attribution of ``target`` (an int, one per image, or None: the predicted class) for
    model-ready ``inputs`` (N, C, H, W). ``layer``: Grad-CAM's layer (default: the last Conv2d); with
    ``upsample=False`` Grad-CAM's map stays at the layer's resolution. ``method`` may also be a callable
    ``(model, inputs, target) -> (N, H, W)``. The model runs in eval mode; no hook remains afterwards."""
    if inputs.ndim != 4:
        raise ConfigError(f"inputs: expected a model-ready (N, C, H, W) float tensor, got shape {tuple(inputs.shape)}")
    tgt = resolve_target(model, inputs, target)
    with eval_mode(model):
        if callable(method):
            return np.asarray(method(model, inputs, tgt), dtype=np.float32)
        raw = captum_call(model, inputs, method, tgt, layer, seed)
        size = tuple(inputs.shape[2:]) if upsample else None
        return reduce_map(raw.detach(), method, size).cpu().float().numpy()


def resolve_target(model: nn.Module, inputs: torch.Tensor, target: int | torch.Tensor | None) -> torch.Tensor:
    """(N,) class indices: ``target`` broadcast, or the model's prediction."""
    if target is None:
        return predicted(model, inputs)
    t = torch.as_tensor(target, dtype=torch.long, device=inputs.device)
    return t.expand(len(inputs)).clone() if t.ndim == 0 else t
