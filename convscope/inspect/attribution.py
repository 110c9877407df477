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

from .._check import is_int
from .._check import seed as check_seed
from ..errors import ConfigError
from ..models.conv_layers import last_conv
from ..models.layers import resolve_layers
from ..models.probe import eval_mode
from ._args import check_model
from .hooks import capture

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


def _last_conv_or_error(model: nn.Module) -> str:
    """Grad-CAM's default layer: the model's last conv."""
    name = last_conv(model)
    if name is None:
        raise ConfigError("layer: the model has no Conv2d layer for Grad-CAM; give layer=NAME of a layer with "
                          "spatial output")
    return name


def check_inputs(inputs, name: str = "inputs") -> torch.Tensor:
    """``inputs`` must be a non-empty, finite, float (N, C, H, W) tensor: the model-ready batch. Anything else
    would give a traceback deep in Captum or silently NaN maps."""
    fix = "a model-ready batch: a float tensor (N, C, H, W), normalized as the model expects"
    if not isinstance(inputs, torch.Tensor):
        convertible = isinstance(inputs, (list, tuple, np.ndarray))
        hint = "; convert with torch.as_tensor(x, dtype=torch.float32)" if convertible else ""
        raise ConfigError(f"{name}: expected {fix}, got {type(inputs).__name__}{hint}")
    if not inputs.is_floating_point():
        raise ConfigError(f"{name}: expected {fix}, got dtype {inputs.dtype}; uint8 images (0..255) must be "
                          "normalized first, e.g. run.normalization.apply(images)")
    if inputs.ndim != 4:
        raise ConfigError(f"{name}: expected a model-ready (N, C, H, W) float tensor, got shape {tuple(inputs.shape)}")
    if len(inputs) == 0:
        raise ConfigError(f"{name}: the batch is empty (shape {tuple(inputs.shape)}); give at least one image")
    if not bool(torch.isfinite(inputs).all()):
        raise ConfigError(f"{name}: holds NaN or infinite values; attribution maps of such inputs are meaningless")
    return inputs


def check_method(method) -> None:
    if not callable(method) and not (isinstance(method, str) and method in METHODS):
        raise ConfigError(f"method: {method!r} is not one of {', '.join(METHODS)} (or a callable "
                          "(model, inputs, target) -> (N, H, W))")


def _probe(model: nn.Module, inputs: torch.Tensor, shapes: bool = False
           ) -> tuple[torch.Tensor, dict[str, tuple[int, ...]]]:
    """The model's output for the first image, and with ``shapes`` every layer's output shape (batch of 1)."""
    seen: dict[str, tuple[int, ...]] = {}
    names = [n for n, _ in model.named_modules() if n] if shapes else []
    with eval_mode(model), torch.no_grad(), capture(model, names, lambda n, t: seen.setdefault(n, tuple(t.shape))):
        out = model(inputs[:1])
    return out, seen


def num_classes(model: nn.Module, inputs: torch.Tensor) -> int:
    """How many class scores the model gives per image (its output must be (N, classes))."""
    out = _probe(model, inputs)[0]
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"model: its output is {shape}, not class scores (N, classes); attribution explains "
                          "a classifier's scores")
    return int(out.shape[1])


def check_target(target, classes: int, n: int, name: str = "target", device: torch.device | None = None
                 ) -> torch.Tensor:
    """``target`` as (n,) class indices: an int, or integers (list, array, tensor) one per image or just one,
    each in 0..classes-1. Floats, strings and booleans are refused (never truncated)."""
    want = f"a class index in 0..{classes - 1} (the model has {classes} classes)"
    if n > 1 and not name.startswith("--"):     # a flag takes one index; the API also one per image
        want += f", or a list of {n} such indices (one per image)"
    values: list = []
    if is_int(target):
        values = [int(target)]
    elif isinstance(target, torch.Tensor):
        if target.dtype == torch.bool or target.is_floating_point() or target.is_complex() or target.ndim > 1:
            raise ConfigError(f"{name}: expected {want}, got a {target.dtype} tensor of shape {tuple(target.shape)}")
        values = target.reshape(-1).tolist()
    elif isinstance(target, np.ndarray):
        if target.dtype.kind not in "iu" or target.ndim > 1:
            raise ConfigError(f"{name}: expected {want}, got a {target.dtype} array of shape {target.shape}")
        values = target.reshape(-1).tolist()
    elif isinstance(target, (list, tuple)) and all(is_int(v)
                                                   for v in target):
        values = [int(v) for v in target]
    else:
        raise ConfigError(f"{name}: expected {want}, got {target!r}")
    if len(values) not in (1, n):
        raise ConfigError(f"{name}: {len(values)} indices for {n} images; expected {want}")
    bad = [v for v in values if not 0 <= v < classes]
    if bad:
        raise ConfigError(f"{name}: {bad[0]} is not a class of the model; expected {want}")
    t = torch.tensor(values, dtype=torch.long, device=device)
    return t.expand(n).clone() if len(values) == 1 else t


def gradcam_layer(model: nn.Module, inputs: torch.Tensor, layer: str | None, name: str = "layer") -> str:
    """The one layer Grad-CAM runs at: ``layer`` (a module name, or a type matching a single module) or the last
    Conv2d, whose output must be a feature map (N, C, H, W): Grad-CAM averages gradients over H and W."""
    if layer is None:
        layer = _last_conv_or_error(model)
    elif not isinstance(layer, str):
        raise ConfigError(f"{name}: expected a layer name (str), got {layer!r}")
    try:
        matched = resolve_layers(model, [layer])
    except ConfigError as e:
        raise ConfigError(f"{name} {layer!r}: {e}") from None
    _, shapes = _probe(model, inputs, shapes=True)
    spatial = [n for n, s in shapes.items() if len(s) == 4]
    valid = f"layers with a (N, C, H, W) output: {', '.join(spatial) or 'none'}"
    if len(matched) > 1:
        raise ConfigError(f"{name} {layer!r}: matches {len(matched)} layers ({', '.join(matched)}); Grad-CAM needs "
                          f"one: name one of the {valid}")
    found = matched[0]
    if found not in shapes:
        raise ConfigError(f"{name} {layer!r}: the layer does not run in the model's forward; name one of the {valid}")
    if len(shapes[found]) != 4:
        raise ConfigError(f"{name} {layer!r}: its output {shapes[found]} is not a feature map (N, C, H, W), so "
                          f"Grad-CAM cannot run there; name one of the {valid}")
    return found


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
        layer = resolve_layers(model, [layer or _last_conv_or_error(model)])[0]
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
    check_model(model)
    check_inputs(inputs)
    check_method(method)
    seed = check_seed(seed)
    if method in ("gradcam", "guided_gradcam"):
        layer = gradcam_layer(model, inputs, layer)
    tgt = resolve_target(model, inputs, target)
    with eval_mode(model):
        if callable(method):
            return np.asarray(method(model, inputs, tgt), dtype=np.float32)
        raw = captum_call(model, inputs, method, tgt, layer, seed)
        size = tuple(inputs.shape[2:]) if upsample else None
        return reduce_map(raw.detach(), method, size).cpu().float().numpy()


def resolve_target(model: nn.Module, inputs: torch.Tensor, target: int | torch.Tensor | None) -> torch.Tensor:
    """(N,) class indices: ``target`` checked (:func:`check_target`) and broadcast, or the model's prediction."""
    if target is None:
        return predicted(model, inputs)
    return check_target(target, num_classes(model, inputs), len(inputs), device=inputs.device)
