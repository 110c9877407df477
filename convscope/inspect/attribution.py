"""Attribution maps through Captum (a dependency, not re-derived): which input pixels a prediction rests on.

``attribute(model, inputs, method)`` -> (N, H, W) float32, one map per image, for ``target`` (default: the
predicted class). Captum returns (N, C, H, W); the channel reduction is fixed per method and documented in
``METHODS`` so a direct Captum call plus that reduction gives the same numbers. Randomness (SmoothGrad's noise)
is drawn under ``torch.random.fork_rng`` with ``seed``: reproducible, and the global RNG is left as it was.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._check import is_int
from .._check import seed as check_seed
from .._result import Display, RichDisplay, Table
from ..errors import ConfigError, ConvscopeError
from ..models.forward import model_input
from ..models.layers import resolve_layers
from ..models.output import check_logits
from ..models.probe import eval_mode
from ._args import check_model
from ..models.hooks import observe
from .hooks import capture
from .projection import relu_rule

# method -> how Captum's (N, C, H, W) becomes (N, H, W)
METHODS = {
    "saliency": "Saliency (|gradient|), max over channels (Simonyan et al. 2014)",
    "smoothgrad": "NoiseTunnel(Saliency) smoothgrad, 16 samples, noise sd 0.15 x input range; max over channels",
    "integrated_gradients": "IntegratedGradients from the zero baseline (BASELINE: mean grey), 32 steps; sum over "
                            "channels",
    "gradcam": "LayerGradCam at `layer` (default: the activation after the last conv block's nonlinearity, found "
               "from the forward pass), ReLU; bilinear upsampling to the input",
    "occlusion": "Occlusion, patches of about H/7 pixels set to zero (BASELINE: mean grey), stride half a patch; "
                 "mean over channels",
    "guided_gradcam": "GuidedGradCam at `layer` (guided backprop x Grad-CAM, nearest upsampling); sum over channels",
    "guided_backprop": "gradient of the class score with guided-backprop ReLUs (Springenberg et al. 2015, the rule "
                       "of `project`); sum over channels",
    "deconvnet": "gradient of the class score with deconvnet ReLUs (Zeiler and Fergus 2014, the rule of "
                 "`project`); sum over channels",
}
# The one reference input of every method that needs one (integrated gradients, occlusion, and the audit's
# deletion/insertion): 0 in model input, i.e. the normalization's mean intensity (mean grey), not black.
BASELINE = "0 in model input (the normalization's mean: mean grey for a run's inputs)"
AttributionFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], np.ndarray]


# nonlinearities, by module type (torch.nn.modules.activation, less the normalizers) and by function name (a
# ``F.relu`` in ``forward`` has no module to hook: found in the torch.fx graph instead)
_NOT_NONLINEAR = {"Softmax", "Softmin", "LogSoftmax", "Softmax2d", "MultiheadAttention"}
_NONLINEAR_FNS = {"relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "celu", "gelu",
                  "silu", "mish", "hardswish", "hardsigmoid", "hardtanh", "hardtanh_", "sigmoid", "sigmoid_", "tanh",
                  "tanh_", "softplus", "prelu", "rrelu", "threshold"}


def is_nonlinearity(module: nn.Module) -> bool:
    """A pointwise activation module (ReLU, GELU, SiLU, ..., subclasses included)."""
    return any(c.__module__ == "torch.nn.modules.activation" and c.__name__ not in _NOT_NONLINEAR
               for c in type(module).__mro__[:-2])


def _executed(model: nn.Module, inputs: torch.Tensor) -> list[tuple[str, nn.Module, int]]:
    """Every leaf module's call in the order the forward pass runs them: (name, module, output ndim)."""
    calls: list[tuple[str, nn.Module, int]] = []
    leaves = [(n, m) for n, m in model.named_modules() if n and next(m.children(), None) is None]

    def hook(name):
        return lambda mod, i, out: calls.append((name, mod, out.ndim if isinstance(out, torch.Tensor) else 0))
    with eval_mode(model), torch.no_grad(), observe([(m, hook(n)) for n, m in leaves]):
        model(inputs[:1])
    return calls


def _after_functional(model: nn.Module, conv: str, spatial: set[str]) -> tuple[str, str] | None:
    """For a forward that applies the nonlinearity as a function (``F.relu(self.bn(self.conv(x)))``): the first
    module fed (directly or through pointwise steps) by the first nonlinearity after the conv ``conv``, in the
    torch.fx graph, if it outputs a feature map. None if the model does not trace or nothing fits."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:     # noqa: BLE001 (data-dependent control flow etc.: fx cannot say; the caller falls back)
        return None
    nodes = list(graph.nodes)
    convs = [i for i, n in enumerate(nodes) if n.op == "call_module" and n.target == conv]
    if not convs:
        return None
    reach, act = {nodes[convs[-1]]}, None
    for n in nodes[convs[-1] + 1:]:
        if not any(a in reach for a in n.all_input_nodes):
            continue
        if act is None:
            reach.add(n)
            name = n.target if n.op == "call_method" else getattr(n.target, "__name__", "")
            if n.op in ("call_function", "call_method") and name in _NONLINEAR_FNS:
                act, reach = name, {n}
        elif n.op == "call_module":
            return (n.target, f"the nonlinearity after the last conv {conv!r} is a function call ({act}) in "
                              f"forward, with no module to hook; Grad-CAM runs at {n.target!r}, the first module "
                              "it feeds") if n.target in spatial else None
        else:
            reach.add(n)
    return None


def default_gradcam_layer(model: nn.Module, inputs: torch.Tensor) -> tuple[str, str]:
    """Grad-CAM's default layer and why: the output of the first nonlinearity that follows the last conv the
    forward pass runs (the last conv block's activation; its maps are >= 0 for a ReLU, so the weighted sum is not
    pushed below zero by a pre-activation's negative values as a conv or BN output is). Found from the order
    modules run in (forward hooks), not from names; a nonlinearity written as ``F.relu`` in ``forward`` is found
    in the torch.fx graph. Falls back to the last conv itself, saying why."""
    calls = _executed(model, inputs)
    spatial = {n for n, _, d in calls if d == 4}
    convs = [i for i, (_, m, d) in enumerate(calls) if isinstance(m, nn.Conv2d) and d == 4]
    if not convs:
        raise ConfigError("layer: the model runs no Conv2d with a feature-map output for Grad-CAM; give "
                          "layer=NAME of a layer with spatial output (N, C, H, W)")
    conv = calls[convs[-1]][0]
    for j in range(convs[-1] + 1, len(calls)):
        name, m, ndim = calls[j]
        if ndim != 4:
            break                       # flattened: the conv part of the network is over
        if is_nonlinearity(m):
            if any(n == name for n, _, _ in calls[j + 1:]):
                break                   # a module used again later: Captum would see its last call
            return name, (f"the first nonlinearity ({type(m).__name__}) after the last conv {conv!r} in the "
                          "forward pass")
    found = _after_functional(model, conv, spatial)
    if found is not None:
        return found
    return conv, (f"no nonlinearity module found after the last conv {conv!r} (none, a module used twice, or one "
                  "the forward graph does not show); Grad-CAM runs at the conv's output, whose pre-activation "
                  "values can make the map all-zero: give layer=NAME of the activation")


def check_inputs(inputs, name: str = "inputs", model: nn.Module | None = None) -> torch.Tensor:
    """``inputs`` must be a non-empty, finite, float (N, C, H, W) tensor: the model-ready batch. Anything else
    would give a traceback deep in Captum or silently NaN maps. With ``model``: returned in the model's dtype
    and on its device (float64 inputs of a float32 model are converted, as the model could not mix them)."""
    fix = "a model-ready batch: a float tensor (N, C, H, W), normalized as the model expects"
    if not isinstance(inputs, torch.Tensor):
        convertible = isinstance(inputs, (list, tuple, np.ndarray))
        hint = "; convert with torch.as_tensor(x, dtype=torch.float32)" if convertible else ""
        raise ConfigError(f"{name}: expected {fix}, got {type(inputs).__name__}{hint}")
    if inputs.is_meta:
        raise ConfigError(f"{name}: a meta tensor (a shape without values); give {fix}")
    if not inputs.is_floating_point():
        raise ConfigError(f"{name}: expected {fix}, got dtype {inputs.dtype}; uint8 images (0..255) must be "
                          "normalized first, e.g. run.normalization.apply(images)")
    if inputs.ndim != 4:
        raise ConfigError(f"{name}: expected a model-ready (N, C, H, W) float tensor, got shape {tuple(inputs.shape)}")
    if len(inputs) == 0:
        raise ConfigError(f"{name}: the batch is empty (shape {tuple(inputs.shape)}); give at least one image")
    if not bool(torch.isfinite(inputs).all()):
        raise ConfigError(f"{name}: holds NaN or infinite values; attribution maps of such inputs are meaningless")
    return inputs if model is None else model_input(model, inputs, name)


def check_method(method) -> None:
    if not callable(method) and not (isinstance(method, str) and method in METHODS):
        raise ConfigError(f"method: {method!r} is not one of {', '.join(METHODS)} (or a callable "
                          "(model, inputs, target) -> (N, H, W))")


def _probe(model: nn.Module, inputs: torch.Tensor, shapes: bool = False
           ) -> tuple[torch.Tensor, dict[str, tuple[int, ...]]]:
    """The model's output for the first image, and with ``shapes`` every layer's output shape (batch of 1)."""
    seen: dict[str, tuple[int, ...]] = {}
    names = [n for n, _ in model.named_modules() if n] if shapes else []
    with eval_mode(model), torch.no_grad(), capture(model, names, lambda n, t: seen.setdefault(n, tuple(t.shape)),
                                                  once=False):    # shapes only: the first call's
        out = model(inputs[:1])
    return out, seen


def num_classes(model: nn.Module, inputs: torch.Tensor) -> int:
    """How many class scores the model gives per image (its output must be (N, classes))."""
    return int(check_logits(_probe(model, inputs)[0], batch=1, where="the first image").shape[1])


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
    """The one layer Grad-CAM runs at (see :func:`gradcam_layer_reason`)."""
    return gradcam_layer_reason(model, inputs, layer, name)[0]


def gradcam_layer_reason(model: nn.Module, inputs: torch.Tensor, layer: str | None, name: str = "layer"
                         ) -> tuple[str, str]:
    """The one layer Grad-CAM runs at and why: ``layer`` (a module name, or a type matching a single module) or
    :func:`default_gradcam_layer`; its output must be a feature map (N, C, H, W): Grad-CAM averages gradients
    over H and W."""
    if layer is None:
        return default_gradcam_layer(model, inputs)
    if not isinstance(layer, str):
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
    return found, "given"


def predicted(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """(N,) the class each image is predicted: the model's scores checked (finite (N, classes)), then argmax."""
    with eval_mode(model), torch.no_grad():
        return check_logits(model(inputs), batch=len(inputs), finite=True, where="the inputs").argmax(1)


def occlusion_window(shape: tuple[int, ...]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(sliding window, strides) for Captum's Occlusion on a (C, H, W) input."""
    c, h, w = shape
    s = max(2, round(min(h, w) / 7))
    return (c, s, s), (c, max(1, s // 2), max(1, s // 2))


# what autograd says when the model's scores do not depend on its input through a graph: a forward that returns
# detached scores, or one that changes its input in place
_NO_GRAPH = ("does not require grad and does not have a grad_fn", "leaf Variable that requires grad is being used in "
             "an in-place operation", "appears to not have been used in the graph")


def captum_call(model: nn.Module, inputs: torch.Tensor, method: str, target: torch.Tensor,
                layer: str | None = None, seed: int = 0) -> torch.Tensor:
    """The Captum call behind each method, raw: (N, C, H, W), or Grad-CAM's (N, 1, h, w) at the layer. A model
    through which no gradient flows is a ConfigError saying so (autograd's own message names no model)."""
    try:
        return _captum_call(model, inputs, method, target, layer, seed)
    except RuntimeError as e:
        if isinstance(e, ConvscopeError) or not any(m in str(e) for m in _NO_GRAPH):
            raise
        raise ConfigError(f"method: {method} needs the gradient of the model's scores with respect to its input, and "
                          f"none flows through this model ({str(e).splitlines()[0]}): its forward detaches the scores "
                          "(.detach(), torch.no_grad(), .numpy()) or changes its input in place (x.mul_()). Fix the "
                          "forward, or use method occlusion, which needs no gradient", arg="method") from e


def _captum_call(model: nn.Module, inputs: torch.Tensor, method: str, target: torch.Tensor,
                 layer: str | None, seed: int) -> torch.Tensor:
    from captum import attr

    x = inputs.detach().clone().requires_grad_()      # Captum warns (an error in strict tests) otherwise
    modules = dict(model.named_modules())
    if method in ("gradcam", "guided_gradcam"):
        layer = gradcam_layer(model, inputs, layer)
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
        # a few images: many occluded copies per forward (one image, 169 windows on 28 x 28: 3 forwards, not 169);
        # 64 or more images: one copy each, as before (the batch is already large)
        return attr.Occlusion(model).attribute(x, sliding_window_shapes=window, strides=strides, target=target,
                                               perturbations_per_eval=max(1, 64 // len(x)))
    if method == "guided_gradcam":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            return attr.GuidedGradCam(model, modules[layer]).attribute(x, target=target)
    if method in ("guided_backprop", "deconvnet"):
        with relu_rule(model, "guided" if method == "guided_backprop" else "deconvnet"):
            score = model(x).gather(1, target[:, None]).sum()
        return torch.autograd.grad(score, x)[0]
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


def degenerate(maps: np.ndarray, rtol: float = 1e-6) -> np.ndarray:
    """(N,) bool: image i's map is constant (all-zero included): max - min within ``rtol`` of its largest |value|
    (exactly equal values for an all-zero map). Such a map ranks no pixel above another."""
    flat = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    spread = flat.max(1) - flat.min(1)
    return spread <= rtol * np.abs(flat).max(1)


class DegenerateMapWarning(UserWarning):
    """An attribution method returned constant (e.g. all-zero) maps for some inputs."""


@dataclass(repr=False)
class Attribution(RichDisplay):
    """:func:`explain`'s result: the maps and what they rest on. Displays as a table per image and the maps under
    their inputs."""

    method: str
    maps: np.ndarray                # (N, H, W) float32 (Grad-CAM without upsampling: the layer's (h, w))
    target: list[int]               # the class explained, per image
    layer: str | None = None        # Grad-CAM's layer
    layer_reason: str | None = None     # why that layer ("given" when named)
    baseline: str | None = None     # what "absent" means for methods that need a reference input
    degenerate_fraction: float = 0.0    # share of images whose map is constant (all-zero included)
    degenerate_indices: list[int] = field(default_factory=list)
    inputs: np.ndarray | None = field(default=None, repr=False)   # (N, C, H, W) the model inputs explained

    def _display(self) -> Display:
        lines = [f"maps {tuple(self.maps.shape)} float32"]
        if self.layer:
            lines.append(f"layer {self.layer}" + (f" ({self.layer_reason})" if self.layer_reason else ""))
        if self.baseline:
            lines.append(f"baseline: {self.baseline}")
        if self.warning:
            lines.append(self.warning)
        bad = set(self.degenerate_indices)
        rows = [[str(i), str(t), f"{float(m.min()):.3g}", f"{float(m.max()):.3g}", "constant" if i in bad else ""]
                for i, (t, m) in enumerate(zip(self.target, self.maps))]
        return Display(f"Attribution ({self.method}) of {len(self.maps)} image(s)", lines,
                       [Table(["image", "target class", "map min", "map max", "note"], rows)])

    def _pictures(self) -> list[tuple[str, bytes]]:
        if self.inputs is None:
            return []
        from ..viz import figure_png
        from .viz_pictures import attribution_figure

        return [("inputs (top) and their maps (bottom), up to 8", figure_png(attribution_figure(
            self.inputs, self.maps, self.target, f"{self.method}" + (f" at {self.layer}" if self.layer else ""))))]

    @property
    def warning(self) -> str | None:
        """One line for the CLI and logs when some maps are constant, else None."""
        if not self.degenerate_indices:
            return None
        n, k = len(self.maps), len(self.degenerate_indices)
        shown = ", ".join(map(str, self.degenerate_indices[:10])) + (", ..." if k > 10 else "")
        where = f" at layer {self.layer!r}" if self.layer else ""
        return (f"{self.method}{where}: {k} of {n} maps ({k / n:.1%}) are constant (all-zero or flat), so they "
                f"rank no pixel: images {shown}" + ("; try another layer=" if self.layer else ""))

    def to_dict(self) -> dict:
        return {"method": self.method, "target": self.target, "layer": self.layer, "layer_reason": self.layer_reason,
                "baseline": self.baseline, "degenerate_fraction": self.degenerate_fraction,
                "degenerate_indices": self.degenerate_indices, "warning": self.warning}


def baseline_of(method) -> str | None:
    """What a method compares the input with, in words (None: the method needs no reference input)."""
    return BASELINE if method in ("integrated_gradients", "occlusion") else None


def explain(model: nn.Module, inputs: torch.Tensor, method: str | AttributionFn, target: int | torch.Tensor |
            None = None, layer: str | None = None, upsample: bool = True, seed: int = 0) -> Attribution:
    """:func:`attribute` with what the maps rest on: Grad-CAM's layer and why it was chosen, the baseline, and
    which images got a constant map (with their share)."""
    check_model(model)
    inputs = check_inputs(inputs, model=model)     # float64 -> the model's float32, on its device
    check_method(method)
    seed = check_seed(seed)
    reason = None
    if method in ("gradcam", "guided_gradcam"):
        layer, reason = gradcam_layer_reason(model, inputs, layer)
    else:
        layer = None
    tgt = resolve_target(model, inputs, target)
    with eval_mode(model):
        if callable(method):
            maps = _custom_maps(method, model, inputs, tgt, upsample)
        else:
            raw = captum_call(model, inputs, method, tgt, layer, seed)
            size = tuple(inputs.shape[2:]) if upsample else None
            maps = reduce_map(raw.detach(), method, size).cpu().float().numpy()
    flat = np.flatnonzero(degenerate(maps))
    name = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    return Attribution(name, maps, tgt.tolist(), layer, reason, baseline_of(method), len(flat) / len(maps),
                       flat.tolist(), inputs.detach().cpu().float().numpy())


def _custom_maps(method: AttributionFn, model: nn.Module, inputs: torch.Tensor, tgt: torch.Tensor,
                 upsample: bool) -> np.ndarray:
    """The (N, H, W) float32 maps of a callable ``method``, held to the contract every built-in method keeps: one
    real map per image, at the input's resolution (any resolution with ``upsample=False``)."""
    name = getattr(method, "__name__", "custom")
    out = method(model, inputs, tgt)
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu()
        if out.is_complex():
            raise ConfigError(f"method: {name} returned complex maps ({out.dtype}); return real (N, H, W) maps")
        out = out.float().numpy()
    try:
        maps = np.asarray(out)
    except Exception as e:   # a ragged list, an object numpy cannot hold as an array
        raise ConfigError(f"method: {name} returned {type(out).__name__}, not an (N, H, W) array ({e})") from None
    if maps.dtype.kind not in "biuf":
        raise ConfigError(f"method: {name} returned {maps.dtype} values; return real (N, H, W) maps")
    n, h, w = inputs.shape[0], inputs.shape[2], inputs.shape[3]
    if maps.ndim != 3 or maps.shape[0] != n or (upsample and tuple(maps.shape[1:]) != (h, w)):
        want = f"({n}, {h}, {w})" if upsample else f"({n}, H, W)"
        raise ConfigError(f"method: {name} returned maps of shape {tuple(maps.shape)}; a method returns one map per "
                          f"image, {want} for these inputs")
    return maps.astype(np.float32)


def attribute(model: nn.Module, inputs: torch.Tensor, method: str | AttributionFn, target: int | torch.Tensor |
              None = None, layer: str | None = None, upsample: bool = True, seed: int = 0) -> np.ndarray:
    """(N, H, W) float32 attribution of ``target`` (an int, one per image, or None: the predicted class) for
    model-ready ``inputs`` (N, C, H, W). ``layer``: Grad-CAM's layer (default: :func:`default_gradcam_layer`,
    the activation after the last conv block's nonlinearity); with ``upsample=False`` Grad-CAM's map stays at
    the layer's resolution. ``method`` may also be a callable ``(model, inputs, target) -> (N, H, W)``. The
    model runs in eval mode; no hook remains afterwards. Constant maps for some images raise a
    :class:`DegenerateMapWarning` with their share; :func:`explain` returns it as fields."""
    res = explain(model, inputs, method, target, layer, upsample, seed)
    if res.warning:
        warnings.warn(res.warning, DegenerateMapWarning, stacklevel=2)
    return res.maps


def resolve_target(model: nn.Module, inputs: torch.Tensor, target: int | torch.Tensor | None) -> torch.Tensor:
    """(N,) class indices: ``target`` checked (:func:`check_target`) and broadcast, or the model's prediction."""
    if target is None:
        return predicted(model, inputs)
    return check_target(target, num_classes(model, inputs), len(inputs), device=inputs.device)
