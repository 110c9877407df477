"""The typed training configuration: strict loading from dicts, YAML or TOML files, named recipes, and
resolution of every derived value before a run writes anything.

Each field's help text and choices live in its metadata (the CLI builds its flags from them); types are
checked against the type hints. Unknown keys and wrong types are errors that list the valid keys.
:func:`resolve` settles what depends on the engine, the dataset and the machine, so the ``config.json`` of
a run holds exactly the settings that ran.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runs.manifest import MAX_TTA_SHIFT
from ..runs.rundir import check_run_name


def _meta(help: str, choices: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A field's metadata: its help text (units included) and, for strings, its valid values."""
    return {"help": help} if choices is None else {"help": help, "choices": choices}


@dataclass
class TrainConfig:
    """Everything that defines a training run. Units are given in the help texts."""

    dataset: str = field(default="digits", metadata=_meta("dataset name (see `convscope data list`) or folder:PATH"))
    data_dir: str | None = field(default=None, metadata=_meta(
        "where datasets are looked for and downloaded (default: the user cache)"))
    model: str = field(default="fast2", metadata=_meta(
        "model name from the registry (see `convscope models`); fast2 since speed round 2, fast before"))
    model_args: dict = field(default_factory=dict, metadata=_meta("model-specific arguments, e.g. {\"width\": 48}"))
    name: str | None = field(default=None, metadata=_meta("run name; default \"<model>-<dataset>\""))
    epochs: int | None = field(default=None, metadata=_meta(
        "passes over the training set (default: 12; 6 on Fashion-MNIST, see DATASET_DEFAULTS)"))
    batch_size: int = field(default=256, metadata=_meta("images per optimizer step"))
    optimizer: str = field(default="sgd", metadata=_meta("optimizer", ("sgd", "adam", "adamw", "adadelta")))
    lr: float = field(default=0.1, metadata=_meta("peak learning rate (per step, for batch_size images)"))
    momentum: float = field(default=0.9, metadata=_meta("SGD momentum (Adam's beta1 is left at 0.9)"))
    nesterov: bool = field(default=True, metadata=_meta("Nesterov momentum (SGD)"))
    weight_decay: float = field(default=5e-4, metadata=_meta("L2 on every parameter (decoupled for adamw)"))
    schedule: str = field(default="onecycle", metadata=_meta(
        "learning-rate schedule", ("constant", "step", "cosine", "onecycle")))
    warmup_epochs: float = field(default=0.0, metadata=_meta(
        "linear warmup from 0 over this many epochs (not for onecycle)"))
    step_epochs: int = field(default=1, metadata=_meta(
        "'step' schedule: multiply by step_gamma every this many epochs"))
    step_gamma: float = field(default=0.7, metadata=_meta("'step' schedule: the factor"))
    label_smoothing: float = field(default=0.1, metadata=_meta("label smoothing of the cross-entropy targets"))
    dropout: float | None = field(default=None, metadata=_meta(
        "overrides the model's dropout where it has a 'dropout' argument"))
    init: str = field(default="default", metadata=_meta(
        "weight init of conv and linear layers", ("default", "kaiming", "xavier")))
    translate: int | None = field(default=None, metadata=_meta(
        "augmentation: random shift of up to this many pixels, zero fill (default: 2; 0 on Fashion-MNIST, see "
        "DATASET_DEFAULTS)"))
    hflip: bool | None = field(default=None, metadata=_meta(
        "augmentation: random horizontal flip (default: on where the dataset allows mirrors, e.g. Fashion-MNIST "
        "and CIFAR; off for digits)"))
    cutout: int = field(default=0, metadata=_meta("augmentation: zero a random square of this side (0 = off)"))
    grad_clip: float | None = field(default=None, metadata=_meta("clip the global gradient norm to this value"))
    ema: float = field(default=0.99, metadata=_meta(
        "decay of an exponential moving average of the weights, per step (0 = off); "
        "evaluation and the saved model use the average"))
    tta: bool = field(default=True, metadata=_meta(
        "test-time augmentation: average the logits of each image and its mirror (only for "
        "runs trained with --hflip on a dataset that allows flips)"))
    tta_shift: int = field(default=0, metadata=_meta(
        "test-time augmentation: also average the views shifted this many pixels up, down, left and right "
        "(0 = off; evaluation and prediction only)"))
    val_fraction: float = field(default=0.0, metadata=_meta(
        "hold out this fraction of train (stratified, fixed seed) for validation"))
    early_stopping: int | None = field(default=None, metadata=_meta(
        "stop after this many epochs without a better validation accuracy"))
    precision: str = field(default="auto", metadata=_meta(
        "auto: bf16 autocast where the hardware has native bf16, else fp32",
        ("auto", "fp32", "bf16")))
    channels_last: bool = field(default=True, metadata=_meta("channels-last memory format for convolutions"))
    threads: int | None = field(default=None, metadata=_meta("torch intra-op threads (default: torch's choice)"))
    device: str = field(default="auto", metadata=_meta("auto: cuda when available, else cpu"))
    sync_bn: bool = field(default=False, metadata=_meta(
        "several processes (torchrun / --nproc): BatchNorm statistics of the whole global batch (SyncBatchNorm)"))
    deterministic: bool = field(default=False, metadata=_meta("deterministic kernels; resumed runs end bit-identical"))
    seed: int = field(default=0, metadata=_meta("seed of initialisation, data order, augmentation and dropout"))
    train_subset: int = field(default=0, metadata=_meta(
        "train on a class-stratified subset of N images (0 = all); quick trials"))
    checkpoint_every: int = field(default=100, metadata=_meta("steps between checkpoints (and one at each epoch end)"))
    max_bad_steps: int = field(default=20, metadata=_meta("stop after this many non-finite steps in a row"))
    log_every: int = field(default=10, metadata=_meta("steps between per-step lines in metrics.jsonl"))
    track_sparsity: bool = field(default=False, metadata=_meta(
        "per epoch: fraction of exactly-zero activations per layer, in metrics.jsonl"))
    engine: str = field(default="torch", metadata=_meta(
        "torch, or numpy: the from-scratch reference layers (CPU, sequential models)",
        ("torch", "numpy")))
    conv_algorithm: str = field(default="im2col", metadata=_meta(
        "numpy engine: the convolution algorithm", ("direct", "im2col", "matrix", "fft")))
    # speed round 2 (issue 15): step-count ideas, each off by default (bench/recipe_ablation2.py measured them)
    lookahead: int = field(default=0, metadata=_meta(
        "Lookahead: every this many steps, move slow weights lookahead_alpha of the way to the trained weights "
        "and restart from them (0 = off)"))
    lookahead_alpha: float = field(default=0.5, metadata=_meta("Lookahead: the slow weights' step, in (0, 1]"))
    low_res: int = field(default=0, metadata=_meta(
        "progressive resizing: image height in pixels for the first low_res_epochs epochs (width in "
        "proportion; 0 = off); the model must accept that size"))
    low_res_epochs: int = field(default=0, metadata=_meta("progressive resizing: epochs at low_res"))
    # shape augmentations for real handwriting (bench/handwriting.py chose stroke + blur for digit datasets)
    rotate: float = field(default=0.0, metadata=_meta(
        "augmentation: random rotation of up to this many degrees (0 = off)"))
    scale: float = field(default=0.0, metadata=_meta(
        "augmentation: random zoom by a factor in [1/(1+s), 1+s] (0 = off)"))
    aspect: float = field(default=0.0, metadata=_meta(
        "augmentation: random width/height stretch in [1/(1+a), 1+a] (0 = off)"))
    stroke: float | None = field(default=None, metadata=_meta(
        "augmentation: random stroke width, blended up to this fraction with a 3x3 dilation or erosion "
        "(default: 0.6 for handwritten digits, else 0)"))
    blur: float | None = field(default=None, metadata=_meta(
        "augmentation: random Gaussian blur, sigma up to this many pixels "
        "(default: 0.8 for handwritten digits, else 0)"))

    def validate(self) -> TrainConfig:
        for key in FLOAT_KEYS:  # nan passes every comparison below (nan < 0 is False): refuse it first
            value = getattr(self, key)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"{key} must be a finite number, got {value}")
        check_run_name(self.name)
        for key, options in CHOICES.items():
            if getattr(self, key) not in options:
                raise ConfigError(f"{key}: {getattr(self, key)!r} is not one of {', '.join(options)}")
        positive = ["epochs", "batch_size", "checkpoint_every", "max_bad_steps", "log_every", "step_epochs"]
        for key in positive:
            if getattr(self, key) is not None and getattr(self, key) < 1:   # epochs: None until resolved
                raise ConfigError(f"{key} must be at least 1, got {getattr(self, key)}")
        for key in ("lr", "weight_decay", "momentum", "warmup_epochs", "translate", "cutout", "train_subset"):
            if getattr(self, key) is not None and getattr(self, key) < 0:   # translate: None until resolved
                raise ConfigError(f"{key} must not be negative, got {getattr(self, key)}")
        for key, limit in (("rotate", 180.0), ("scale", 10.0), ("aspect", 10.0), ("stroke", 1.0), ("blur", 10.0)):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value <= limit:
                raise ConfigError(f"{key} must lie in [0, {limit:g}], got {value}")
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
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.step_gamma <= 0:
            raise ConfigError(f"step_gamma must be positive, got {self.step_gamma}")
        if not 0 <= self.tta_shift <= MAX_TTA_SHIFT:
            raise ConfigError(f"tta_shift must lie in 0..{MAX_TTA_SHIFT} pixels, got {self.tta_shift}")
        if self.lookahead < 0:
            raise ConfigError(f"lookahead must be 0 (off) or a number of steps, got {self.lookahead}")
        if not 0.0 < self.lookahead_alpha <= 1.0:
            raise ConfigError(f"lookahead_alpha must lie in (0, 1], got {self.lookahead_alpha}")
        if self.low_res < 0 or self.low_res_epochs < 0:
            raise ConfigError(f"low_res and low_res_epochs must not be negative, got {self.low_res} and "
                              f"{self.low_res_epochs}")
        if (self.low_res > 0) != (self.low_res_epochs > 0):
            raise ConfigError(f"progressive resizing needs both low_res (pixels) and low_res_epochs, got "
                              f"low_res={self.low_res}, low_res_epochs={self.low_res_epochs}; set both, or neither")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"grad_clip must be positive, got {self.grad_clip}")
        if self.engine == "numpy":
            if self.optimizer not in ("sgd", "adam"):
                raise ConfigError(f"optimizer: the numpy engine has sgd and adam, not {self.optimizer!r}")
            if self.device not in ("auto", "cpu"):
                raise ConfigError(f"device: the numpy engine runs on the CPU, not {self.device!r}")
        return self

    @property
    def run_name(self) -> str:
        return self.name or f"{self.model}-{self.dataset.replace('folder:', 'folder-').replace('/', '_')}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
HINTS: dict[str, Any] = typing.get_type_hints(TrainConfig)    # real types, not the strings of the annotations
CHOICES: dict[str, tuple[str, ...]] = {k: f.metadata["choices"] for k, f in FIELDS.items() if "choices" in f.metadata}
FLOAT_KEYS = tuple(k for k, h in HINTS.items() if float in (typing.get_args(h) or (h,)))  # every float option


HANDWRITTEN_DIGITS = ("digits", "mnist")
# Defaults that depend on the dataset, for keys the user left unset. Fashion-MNIST (speed round 2, issue 15,
# bench/results/recipe_ablation_round2_fashion-mnist.json): without translation a run learns the clothes much
# sooner (4 epochs: 92.96% against 91.91% with +-2 px shifts); 6 epochs without shifts end at 93.4%, as the
# 12 epochs with shifts did, in half the time. Everything else takes the generic defaults.
GENERIC_DEFAULTS: dict[str, Any] = {"epochs": 12, "translate": 2}
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {"fashion-mnist": {"epochs": 6, "translate": 0}}


def dataset_default(key: str, dataset: str) -> Any:
    return DATASET_DEFAULTS.get(dataset, {}).get(key, GENERIC_DEFAULTS[key])

# Keys added after runs were first recorded (and "model", whose default changed; every config.json records it, so
# this only matters to a hand-written one), with the value that reproduces a run recorded without them.
KEYS_ADDED_LATER: dict[str, Any] = {"model": "fast", "rotate": 0.0, "scale": 0.0, "aspect": 0.0, "stroke": 0.0,
                                    "blur": 0.0}


def recorded_config(values: dict[str, Any], source: str) -> TrainConfig:
    """The config of a run directory's ``config.json``: keys it predates are filled with the values that
    reproduce it (not today's defaults), so resuming an older run continues the same run."""
    if isinstance(values, dict):
        values = {**{k: v for k, v in KEYS_ADDED_LATER.items() if k not in values}, **values}
    return config_from_dict(values, source=source)


def require_resolved(cfg: TrainConfig, who: str) -> None:
    """Engines and the batch feeder take a resolved config: dataset-dependent defaults (epochs, translate) are
    None until :func:`resolve` settles them."""
    unset = [k for k in GENERIC_DEFAULTS if getattr(cfg, k) is None]
    if unset:
        raise ConfigError(f"{who}: {', '.join(unset)} not set; resolve the config first "
                          "(convscope.training.setup.prepare(cfg) returns the config that runs), or set them")


def resolve(cfg: TrainConfig, *, hflip_ok: bool, device: str, native_bf16: bool) -> TrainConfig:
    """``cfg`` with every value that depends on the engine, the dataset or the machine settled: the config
    that actually runs. ``hflip_ok``: whether the training set allows mirrored images; ``device``: the device
    ``cfg.device`` resolves to; ``native_bf16``: whether that device runs bf16 autocast natively.

    Unset dataset-dependent keys (epochs, translate) take :data:`DATASET_DEFAULTS`. The numpy engine trains
    plain fp32 on the CPU (no weight average, no channels-last, no test-time flips); test-time flips apply only
    to runs trained with flips. Resolving a resolved config changes nothing."""
    cfg.validate()
    if cfg.hflip and not hflip_ok:
        raise ConfigError(f"hflip: dataset {cfg.dataset!r} does not allow horizontal flips "
                          "(mirrored digits change meaning); remove --hflip")
    hflip = hflip_ok if cfg.hflip is None else cfg.hflip  # default: flips wherever the dataset allows them
    changes: dict[str, Any] = {"device": device, "hflip": hflip, "tta": cfg.tta and hflip}
    for key in GENERIC_DEFAULTS:
        if getattr(cfg, key) is None:
            changes[key] = dataset_default(key, cfg.dataset)
    epochs = changes.get("epochs", cfg.epochs)
    if cfg.low_res_epochs and cfg.low_res_epochs >= epochs:
        raise ConfigError(f"low_res_epochs: {cfg.low_res_epochs} of {epochs} epochs at low_res leaves none at "
                          "the images' own size, the size the model is tested at; give fewer low_res_epochs")
    digits = cfg.dataset in HANDWRITTEN_DIGITS   # real handwriting needs stroke and blur variation
    if cfg.stroke is None:
        changes["stroke"] = 0.6 if digits else 0.0
    if cfg.blur is None:
        changes["blur"] = 0.8 if digits else 0.0
    if cfg.engine == "numpy" and cfg.lookahead:
        raise ConfigError("lookahead: the numpy engine trains with its own plain optimizers; drop --lookahead "
                          "or use --engine torch")
    if cfg.engine == "numpy":
        changes.update(device="cpu", channels_last=False, ema=0.0, tta=False, tta_shift=0, precision="fp32")
    elif cfg.precision == "auto":
        changes["precision"] = "bf16" if native_bf16 else "fp32"
    return dataclasses.replace(cfg, **changes).validate()


# Named recipes: overrides of the defaults (the defaults are the `fast` recipe).
RECIPES: dict[str, dict[str, Any]] = {
    "fast": {},
    # PyTorch's official MNIST example: Adadelta lr 1.0, StepLR gamma 0.7 per epoch, batch 64, 14 epochs
    "pytorch-example": dict(model="pytorch-example", optimizer="adadelta", lr=1.0, schedule="step", step_epochs=1,
                            step_gamma=0.7, batch_size=64, epochs=14, weight_decay=0.0, label_smoothing=0.0,
                            translate=0, hflip=False, precision="fp32", channels_last=False, ema=0.0, tta=False),
    # the Keras MNIST convnet example: Adam (lr 1e-3), batch 128, 15 epochs, 10% validation split
    "keras-example": dict(model="keras-example", optimizer="adam", lr=1e-3, schedule="constant", batch_size=128,
                          epochs=15, val_fraction=0.1, weight_decay=0.0, label_smoothing=0.0, translate=0,
                          hflip=False, precision="fp32", channels_last=False, ema=0.0, tta=False),
}


def _type_ok(value: Any, annotation: Any) -> bool:
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


def type_name(annotation: Any) -> str:
    """``float | None`` for the hint float | None, ``int`` for int."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def config_from_dict(values: dict[str, Any], base: TrainConfig | None = None, source: str = "config") -> TrainConfig:
    """A validated TrainConfig: ``base`` (default: defaults) updated with ``values``; strict on keys and types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of keys to values, got {type(values).__name__}")
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(FIELDS)}")
    merged = (base or TrainConfig()).to_dict()
    for key, value in values.items():
        if not _type_ok(value, HINTS[key]):
            raise ConfigError(f"{source}: {key} = {value!r} has the wrong type: expected {type_name(HINTS[key])}; "
                              f"valid keys: {', '.join(FIELDS)}")
        if float in (typing.get_args(HINTS[key]) or (HINTS[key],)) and isinstance(value, int):
            value = float(value)
        merged[key] = value
    return TrainConfig(**merged).validate()


def recipe(name: str) -> TrainConfig:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; valid: {', '.join(RECIPES)}")
    return config_from_dict(RECIPES[name], source=f"recipe {name}")


MAX_CONFIG_BYTES = 1 << 20  # a config file is a few hundred bytes; anything beyond 1 MiB is not one


def _yaml_loader() -> type:
    """PyYAML's SafeLoader without aliases: ``*name`` repeats a node by reference, so nine lines of aliases
    (the "billion laughs") describe 10**9 strings that any later copy of the config expands. Config files do
    not need them; they are refused when composed, before anything is built."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
            if self.check_event(yaml.events.AliasEvent):
                event = self.peek_event()
                raise ConfigError(f"line {event.start_mark.line + 1}: YAML alias *{event.anchor} is not allowed "
                                  "in config files; write the value out")
            return super().compose_node(parent, index)

    return NoAliasLoader


def _read_text(path: Path) -> str:
    """The text of a regular file of at most MAX_CONFIG_BYTES (a FIFO would block, a device never end)."""
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"{path}: is a directory, not a config file")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: not a regular file (a pipe, socket or device); give a config file")
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {st.st_size:,} bytes; a config file may hold at most {MAX_CONFIG_BYTES:,}")
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror or e})") from e
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: more than {MAX_CONFIG_BYTES:,} bytes; not a config file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (a binary file?): byte {e.start} cannot be decoded") from None


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a YAML (.yaml/.yml), TOML (.toml) or JSON (.json) config file into a dict (not yet validated).
    Regular files of at most 1 MiB only; YAML aliases are refused."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml", ".json"):
        raise ConfigError(f"{path}: unknown config format {suffix or '(none)'}; use .yaml, .yml, .toml or .json")
    text = _read_text(path)
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.load(text, Loader=_yaml_loader()) or {}  # noqa: S506 (a SafeLoader subclass)
        elif suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover
                import tomli as tomllib
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config file") from None
    except Exception as e:  # the parsers' own error types differ; all mean "malformed"
        raise ConfigError(f"{path}: malformed {suffix[1:].upper()}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return data
