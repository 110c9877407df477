"""The model contract every command relies on: ``forward`` of a (B, C, H, W) float batch returns class scores,
a floating-point tensor of shape (B, classes).

Checked in one place, :func:`check_logits`, wherever a model's output enters convscope: once when a user model
is loaded (:func:`output_classes`, a forward pass of two zero images), and on the real outputs of the commands
that read them (explain's prediction, features, evaluation), where ``finite=True`` (explain, refine) refuses NaN and
infinite scores: an argmax over NaNs is class 0, a "prediction" that means nothing."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .probe import eval_mode, zeros_forward

CONTRACT = ("convscope expects a classifier: forward(x) of a (B, C, H, W) float batch returns class scores as a "
            "floating-point tensor (B, classes)")


def _describe(out: object) -> str:
    if isinstance(out, torch.Tensor):
        return f"a {out.dtype} tensor of shape {tuple(out.shape)}"
    return f"a {type(out).__name__}"


def check_logits(out: object, name: str = "model", *, batch: int | torch.SymInt | None = None,
                 classes: int | None = None, finite: bool = False, where: str = "") -> torch.Tensor:
    """``out`` as the contract's (B, classes) floating-point scores, or a ConfigError naming ``name`` (the model
    or the flag that gave it). ``batch``: the B the input had; ``classes``: the count the caller needs (the
    dataset's); ``finite``: refuse NaN/inf scores; ``where``: what the input was, for the message."""
    at = f" for {where}" if where else ""
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or not out.is_floating_point() \
            or (batch is not None and out.shape[0] != batch) or out.shape[1] < 1:
        hint = ""
        if isinstance(out, torch.Tensor) and out.ndim == 4:
            hint = "; a feature map (B, C, H, W): end forward with pooling, .flatten(1) and a Linear layer"
        elif isinstance(out, torch.Tensor) and out.ndim == 1:
            hint = "; one value per image: return it as (B, 1), e.g. out[:, None], or one score per class"
        elif isinstance(out, torch.Tensor) and out.ndim == 2 and not out.is_floating_point():
            hint = "; return the raw scores (logits), not class indices or rounded values"
        elif isinstance(out, torch.Tensor) and out.ndim == 2 and batch is not None and out.shape[0] != batch:
            hint = (f"; it gave {out.shape[0]} row(s) for {batch} image(s): return one row per input image (does "
                    "forward drop, slice or mix the batch?)")
        elif isinstance(out, (tuple, list, dict)):
            hint = "; return the class scores alone, not a tuple/list/dict"
        raise ConfigError(f"{name}: its output{at} is {_describe(out)}; {CONTRACT}{hint}", arg=name)
    if classes is not None and out.shape[1] != classes:
        raise ConfigError(f"{name}: gives {out.shape[1]} class scores per image, but {classes} are needed (the "
                          "dataset's classes); use the model with the dataset it was trained for", arg=name)
    if finite:
        bad = ~torch.isfinite(out).all(1)                                    # (B,) images with a NaN/inf score
        if bool(bad.any()):
            first = int(bad.nonzero()[0])
            raise ConfigError(f"{name}: its output{at} holds NaN or infinite scores ({int(bad.sum())} of {len(out)} "
                              f"image(s), first #{first}); no class can be predicted from them. Check the model's "
                              "weights (a diverged run?) and its input normalization", arg=name)
    return out


def output_classes(model: nn.Module, input_shape, name: str = "model", shape_name: str = "input_shape") -> int:
    """The number of class scores the model gives, from two zero images of ``input_shape`` (eval mode, no
    gradients): the contract checked once, where the model enters. Finiteness is left to the real inputs (a
    model may legitimately divide by a zero image's norm)."""
    # two images, not one: a forward that keeps only the first row (or mixes images) passes a batch of one and would
    # give silently wrong attributions for every image after the first
    with eval_mode(model), torch.no_grad():
        out = zeros_forward(model, input_shape, shape_name, batch=2)
    return int(check_logits(out, name, batch=2, where=f"two zero images of shape {tuple(input_shape)}").shape[1])
