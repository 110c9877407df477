"""Training settings checked against the data they will train on: the one place for every check that needs the
images' size, the classes or the size of the training set, which are known only once the dataset is loaded.
(The machine's CPU count bounds ``threads`` in :func:`~convscope.training.api.train`, before torch starts them.)

A setting that cannot make sense on these images (a shift or a cutout as large as the image, a zoom that leaves
a few pixels, rotations that turn 6s into 9s) is refused with a :class:`~convscope.errors.ConfigError` naming
the key (the CLI names the flag, or the config file that gave it), the image size and the valid range. A
setting that is valid but unusual enough to be a mistake gets a :class:`~convscope.errors.SettingWarning` in
words and the run goes on. The static ranges (``momentum`` in [0, 1), ``warmup_epochs`` below ``epochs``) are
:meth:`TrainConfig.validate`'s.
"""

from __future__ import annotations

import math
import warnings

import torch

from ..errors import ConfigError, SettingWarning
from .batches import TrainData, steps_per_epoch
from .config import TrainConfig

# The fewest pixels across that a zoomed (or stretched) training image may keep: below this an image is a blob
# (the first 3x3 convolution of every built-in model sees all of it at once).
MIN_VIEW_PX = 4

# Learning rates beyond which a run almost surely diverges or never moves, per optimizer (per step, at the
# batch sizes convscope uses): SGD with momentum trains CNNs at 0.01 to 0.5 (our default 0.1), Adam and AdamW at
# 1e-4 to 3e-3 (Kingma & Ba's default 1e-3), Adadelta at 1.0 (Zeiler's value; PyTorch's MNIST example). The
# bounds are about a decade beyond those: far outside, not merely unusual.
LR_WARN: dict[str, tuple[float, float]] = {"sgd": (1e-4, 2.0), "adam": (1e-6, 0.03), "adamw": (1e-6, 0.03),
                                           "adadelta": (0.01, 10.0)}


def warn_unusual(given: TrainConfig, cfg: TrainConfig, data: TrainData) -> None:
    """A :class:`~convscope.errors.SettingWarning` for each unusual setting of the resolved ``cfg`` on ``data``
    (``given``: the config before resolution, for options the resolution replaces)."""
    for message in unusual_settings(cfg, data) + ignored_settings(given):
        warnings.warn(message, SettingWarning, stacklevel=3)


def refuse_senseless(cfg: TrainConfig, data: TrainData) -> None:
    """A ConfigError for the first augmentation that cannot make sense on images of ``data``'s size and classes.
    ``cfg``: the config as given, before :func:`~convscope.training.config.resolve` (a dataset-dependent key
    left unset is None, the dataset's own default, and is not checked)."""
    _, h, w = data.train.shape
    side, size = min(h, w), f"{h}x{w}"
    a = cfg.augment
    shift_max = (side - 1) // 2
    if a.translate is not None and a.translate > shift_max:
        raise ConfigError(f"translate: a shift of up to {a.translate} px on {size} images can move an image's "
                          f"centre out of the frame (zero fill: the model sees blank images); give 0 to "
                          f"{shift_max} px for these images (2 is usual)", arg="translate")
    if a.cutout >= side:
        raise ConfigError(f"cutout: a {a.cutout} px square on {size} images can erase the whole image; give 0 to "
                          f"{side - 1} px for these images (half the side, {side // 2}, is the usual largest)",
                          arg="cutout")
    # zoom by up to (1 + scale), stretch by up to (1 + aspect), sqrt of it per axis: the extreme zoom-out shrinks
    # the image to side / factor px, the extreme zoom-in fills the frame with side / factor px of it
    if a.scale > 0 and side / (1 + a.scale) < MIN_VIEW_PX:
        raise ConfigError(f"scale: a zoom by up to {1 + a.scale:g}x on {size} images shrinks an image to "
                          f"{side / (1 + a.scale):.1f} px across (or fills the frame with that much of it); give 0 "
                          f"to {_largest(side / MIN_VIEW_PX - 1)} for these images (at least {MIN_VIEW_PX} px must "
                          "remain; 0.1 to 0.3 is usual)", arg="scale")
    factor = (1 + a.scale) * math.sqrt(1 + a.aspect)
    if a.aspect > 0 and side / factor < MIN_VIEW_PX:
        top = (side / (MIN_VIEW_PX * (1 + a.scale))) ** 2 - 1
        raise ConfigError(f"aspect: a stretch by up to {1 + a.aspect:g}x" + (f" with a zoom by up to {1 + a.scale:g}x"
                          if a.scale else "") + f" on {size} images leaves {side / factor:.1f} px across; give 0 "
                          f"to {_largest(top)} for these images (at least {MIN_VIEW_PX} px must remain)", arg="aspect")
    classes = set(data.train.classes)
    if a.rotate > 90 and {"6", "9"} <= classes:
        raise ConfigError(f"rotate: rotations of up to {a.rotate:g} degrees on dataset {cfg.data.dataset!r} give "
                          "6s and 9s the same pictures (a 6 turned by 90+x degrees is a 9 turned by x-90) under "
                          "different labels; give 0 to 90 degrees (15 is usual for digits)", arg="rotate")


def _largest(value: float) -> str:
    """``value`` rounded down to two decimals, as a valid range's top ("0 to 6" or "0 to 0.75")."""
    return f"{max(0.0, math.floor(value * 100) / 100):g}"


def unusual_settings(cfg: TrainConfig, data: TrainData) -> list[str]:
    """Messages, in words, for the valid but unusual settings of the resolved ``cfg`` on ``data``."""
    out: list[str] = []
    n, k = len(data.train), len(data.train.classes)
    seen = int(torch.unique(data.train.labels).numel())
    subset = cfg.data.train_subset
    full = n + (len(data.val) if data.val is not None else 0)
    if 0 < subset < k:
        out.append(f"train_subset {subset} is fewer images than the {k} classes: only {seen} classes have a "
                   f"training image, so the model can never learn the other {k - seen}; give at least {k} "
                   f"(10 per class, {10 * k}, for a quick trial)")
    elif seen < k:   # a subset or a validation split took every image of some class
        out.append(f"only {seen} of the {k} classes have a training image ({n} images after train_subset and "
                   f"val_fraction); the model can never learn the others")
    if subset > full:
        out.append(f"train_subset {subset} is more than the {full} training images of {cfg.data.dataset!r}: all of "
                   "them are used")
    if cfg.optim.batch_size > n:
        out.append(f"batch_size {cfg.optim.batch_size} is larger than the training set ({n} images): every step "
                   f"uses all {n}, so an epoch is one step; give a batch of at most {n}")
    epochs, warm = cfg.schedule.epochs or 0, cfg.schedule.warmup_epochs
    if warm > 0 and cfg.schedule.name == "onecycle":
        out.append(f"warmup_epochs {warm:g} has no effect with the onecycle schedule (it warms up over its first "
                   "25% of steps by itself); drop it, or choose --schedule constant, step or cosine")
    elif warm > 0 and warm >= epochs / 2:
        out.append(f"warmup_epochs {warm:g} is half or more of the run ({epochs} epochs): the learning rate is below "
                   f"its peak lr for {100 * min(warm / epochs, 1):.0f}% of the training; usual is 5 to 10%")
    steps = (epochs or 0) * steps_per_epoch(n, cfg.optim.batch_size)
    if cfg.schedule.name == "onecycle" and steps < 4:   # the rate rises from 0 over the first quarter of the steps
        out.append(f"a onecycle run of {steps} step{'s' if steps != 1 else ''} ({n} images, batch_size "
                   f"{cfg.optim.batch_size}, {epochs} epoch{'s' if epochs != 1 else ''}): its first step has learning "
                   "rate 0 (the schedule rises from 0), " + ("so the model stays as initialised" if steps == 1 else
                                                              "and the peak lr is never reached")
                   + "; train longer, use a smaller batch, or --schedule constant")
    o = cfg.optim
    if o.optimizer == "sgd" and o.momentum > 0.99:
        out.append(f"momentum {o.momentum:g} is above 0.99: SGD then averages the gradients of about "
                   f"{1 / (1 - o.momentum):.0f} steps and reacts slowly to every change of the rate; 0.9 is usual")
    lo, hi = LR_WARN[o.optimizer]
    if o.lr == 0:
        out.append("lr 0: the weights never change; the run only measures the initial model")
    elif not lo <= o.lr <= hi:
        out.append(f"lr {o.lr:g} is far {'below' if o.lr < lo else 'above'} the usual range of {o.optimizer} "
                   f"({lo:g} to {hi:g}): the run will likely {'hardly move' if o.lr < lo else 'diverge'}"
                   + ("; Adam-type optimizers want about 1e-3" if o.optimizer in ("adam", "adamw") and o.lr > hi
                      else ""))
    return out


def ignored_settings(given: TrainConfig) -> list[str]:
    """Messages for options ``given`` sets that the run cannot use (they would be dropped without a word)."""
    out: list[str] = []
    r, defaults = given.runtime, TrainConfig().runtime
    if r.engine == "numpy" and r.precision == "bf16":
        out.append("precision bf16: the numpy engine computes in fp32 (the run records precision fp32); drop "
                   "--precision, or train with --engine torch")
    if r.engine == "torch" and r.conv_algorithm != defaults.conv_algorithm:
        out.append(f"conv_algorithm {r.conv_algorithm}: only the numpy engine has a choice of convolution algorithm; "
                   "the torch engine uses its own kernels. Drop --conv-algorithm, or add --engine numpy")
    return out
