"""The typed training configuration: strict loading from dicts, YAML or TOML files, and named recipes.

Unknown keys and wrong types are errors that list the valid keys. The resolved config is written into
every run directory as ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": ("sgd", "adam", "adamw", "adadelta"),
    "schedule": ("constant", "step", "cosine", "onecycle"),
    "init": ("default", "kaiming", "xavier"),
    "precision": ("auto", "fp32", "bf16"),
    "engine": ("torch", "numpy"),
    "conv_algorithm": ("direct", "im2col", "matrix", "fft"),
}


@dataclass
class TrainConfig:
    """Everything that defines a training run. Units are given in the comments."""

    dataset: str = "digits"
    data_dir: str | None = None
    model: str = "fast"
    model_args: dict = field(default_factory=dict)
    name: str | None = None              # run name; default "<model>-<dataset>"
    epochs: int = 12
    batch_size: int = 256                # images per optimizer step
    optimizer: str = "sgd"
    lr: float = 0.1                      # peak learning rate (per step, for batch_size images)
    momentum: float = 0.9                # SGD momentum (Adam's beta1 is left at 0.9)
    nesterov: bool = True
    weight_decay: float = 5e-4           # L2 on every parameter (decoupled for adamw)
    schedule: str = "onecycle"
    warmup_epochs: float = 0.0           # linear warmup from 0 over this many epochs (not for onecycle)
    step_epochs: int = 1                 # 'step' schedule: multiply by step_gamma every this many epochs
    step_gamma: float = 0.7
    label_smoothing: float = 0.1
    dropout: float | None = None         # overrides the model's dropout where it has a 'dropout' argument
    init: str = "default"                # weight init of conv and linear layers
    translate: int = 2                   # augmentation: random shift of up to this many pixels (zero fill)
    hflip: bool = False                  # augmentation: random horizontal flip, only if the dataset allows it
    cutout: int = 0                      # augmentation: zero a random square of this side (0 = off)
    grad_clip: float | None = None       # clip the global gradient norm to this value
    ema: float = 0.99                    # decay of an exponential moving average of the weights, per step (0 = off);
                                         # evaluation and the saved model use the average
    tta: bool = True                     # test-time augmentation: average the logits of each image and its mirror
                                         # (only where the dataset allows flips)
    val_fraction: float = 0.0            # hold out this fraction of train (stratified, fixed seed) for validation
    early_stopping: int | None = None    # stop after this many epochs without a better validation accuracy
    precision: str = "auto"              # auto: bf16 autocast where the CPU has native bf16, else fp32
    channels_last: bool = True
    threads: int | None = None           # torch intra-op threads (default: torch's choice)
    device: str = "auto"                 # auto: cuda when available, else cpu
    deterministic: bool = False          # deterministic kernels; resumed runs end bit-identical
    seed: int = 0
    train_subset: int = 0                # train on a class-stratified subset of N images (0 = all); quick trials
    checkpoint_every: int = 100          # steps between checkpoints (and one at each epoch end)
    max_bad_steps: int = 20              # stop after this many non-finite steps in a row
    log_every: int = 10                  # steps between per-step lines in metrics.jsonl
    track_sparsity: bool = False         # per epoch: fraction of exactly-zero activations per layer, in metrics.jsonl
    engine: str = "torch"                # torch, or numpy: the from-scratch reference layers (CPU, sequential models)
    conv_algorithm: str = "im2col"       # numpy engine: direct, im2col, matrix or fft convolution
    rotate: float = 0.0                  # augmentation: random rotation of up to this many degrees (0 = off)
    scale: float = 0.0                   # augmentation: random zoom by a factor in [1/(1+s), 1+s] (0 = off)
    aspect: float = 0.0                  # augmentation: random width/height stretch in [1/(1+a), 1+a] (0 = off)
    stroke: float = 0.0                  # augmentation: random stroke width, blend up to this with 3x3 dilation/erosion
    blur: float = 0.0                    # augmentation: random Gaussian blur, sigma up to this many pixels (0 = off)

    def validate(self) -> TrainConfig:
        for key, options in CHOICES.items():
            if getattr(self, key) not in options:
                raise ConfigError(f"{key}: {getattr(self, key)!r} is not one of {', '.join(options)}")
        positive = ["epochs", "batch_size", "checkpoint_every", "max_bad_steps", "log_every", "step_epochs"]
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be at least 1, got {getattr(self, key)}")
        for key in ("lr", "weight_decay", "momentum", "warmup_epochs", "translate", "cutout", "train_subset"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must not be negative, got {getattr(self, key)}")
        for key in ("rotate", "scale", "aspect", "stroke", "blur"):
            if not 0.0 <= getattr(self, key) <= (180.0 if key == "rotate" else 1.0 if key == "stroke" else 10.0):
                limit = 180 if key == "rotate" else 1 if key == "stroke" else 10
                raise ConfigError(f"{key} must lie in [0, {limit}], got {getattr(self, key)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must lie in [0, 1), got {self.val_fraction}")
        if self.early_stopping is not None and self.val_fraction == 0.0:
            raise ConfigError("early_stopping needs a validation split: set val_fraction (e.g. 0.1)")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema must lie in [0, 1), got {self.ema}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be at least 1, got {self.threads}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"grad_clip must be positive, got {self.grad_clip}")
        return self

    @property
    def run_name(self) -> str:
        return self.name or f"{self.model}-{self.dataset.replace('folder:', 'folder-').replace('/', '_')}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}

# Named recipes: overrides of the defaults (the defaults are the `fast` recipe).
RECIPES: dict[str, dict[str, Any]] = {
    "fast": {},
    # PyTorch's official MNIST example: Adadelta lr 1.0, StepLR gamma 0.7 per epoch, batch 64, 14 epochs
    "pytorch-example": dict(model="pytorch-example", optimizer="adadelta", lr=1.0, schedule="step", step_epochs=1,
                            step_gamma=0.7, batch_size=64, epochs=14, weight_decay=0.0, label_smoothing=0.0,
                            translate=0, precision="fp32", channels_last=False, ema=0.0, tta=False),
    # the Keras MNIST convnet example: Adam (lr 1e-3), batch 128, 15 epochs, 10% validation split
    "keras-example": dict(model="keras-example", optimizer="adam", lr=1e-3, schedule="constant", batch_size=128,
                          epochs=15, val_fraction=0.1, weight_decay=0.0, label_smoothing=0.0, translate=0,
                          precision="fp32", channels_last=False, ema=0.0, tta=False),
}


def _type_ok(value: Any, annotation: Any) -> bool:
    if isinstance(annotation, str):
        annotation = eval(annotation, {**vars(typing), **vars(sys.modules[__name__])})  # noqa: S307 (our own hints)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    return isinstance(value, annotation)


def config_from_dict(values: dict[str, Any], base: TrainConfig | None = None, source: str = "config") -> TrainConfig:
    """A validated TrainConfig: ``base`` (default: defaults) updated with ``values``; strict on keys and types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of keys to values, got {type(values).__name__}")
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(FIELDS)}")
    merged = (base or TrainConfig()).to_dict()
    for key, value in values.items():
        if not _type_ok(value, FIELDS[key].type):
            raise ConfigError(f"{source}: {key} = {value!r} has the wrong type: expected {FIELDS[key].type}; "
                              f"valid keys: {', '.join(FIELDS)}")
        if FIELDS[key].type in ("float", "float | None") and isinstance(value, int):
            value = float(value)
        merged[key] = value
    return TrainConfig(**merged).validate()


def recipe(name: str) -> TrainConfig:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; valid: {', '.join(RECIPES)}")
    return config_from_dict(RECIPES[name], source=f"recipe {name}")


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a YAML (.yaml/.yml), TOML (.toml) or JSON (.json) config file into a dict (not yet validated)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror or e})") from e
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover
                import tomli as tomllib
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{path}: unknown config format {suffix or '(none)'}; use .yaml, .yml, .toml or .json")
    except ConfigError:
        raise
    except Exception as e:  # the parsers' own error types differ; all mean "malformed"
        raise ConfigError(f"{path}: malformed {suffix[1:].upper()}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return data
