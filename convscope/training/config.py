"""The typed training configuration: seven sections of typed fields, strict loading from dicts or files,
named recipes, and resolution of every derived value before a run writes anything.

    TrainConfig(name, data, model, optim, schedule, augment, eval, runtime)

Each field's metadata carries its help text (units included), its flat key (the name a flat config and the
command-line flag use: ``lr`` / ``--lr`` for ``optim.lr``), its valid ``range`` and its ``choices``; these
drive both :meth:`TrainConfig.validate` and the ``convscope train`` flags, and every float must be finite.
A config is read flat (``{"lr": 0.05}``, as 0.1 wrote config.json) or in sections (``{"optim": {"lr": 0.05}}``,
as runs write it now); unknown keys and wrong types are errors that list the valid keys. :func:`resolve`
settles what depends on the engine, the dataset and the machine, so a run's ``config.json`` holds exactly the
settings that ran.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from .._check import seed as check_seed
from ..errors import ConfigError
from ..runs.names import check_run_name
from .configfile import read_config_file

__all__ = ["FIELDS", "FLAT", "RECIPES", "SECTIONS", "TrainConfig", "config_from_dict", "given_keys", "read_config_file",
           "recipe", "recorded_config", "resolve", "retired_settings"]

_UNSET: Any = dataclasses.MISSING

# `train --check` (training/sanity.py): overfit one small batch, within a bound on the steps. A few dozen images
# show whether a model can learn (Karpathy's recipe: a handful); a batch of 100,000 (all 60,000 images of MNIST,
# every step) ran for about 20 minutes without a word, so the batch and the bound are capped.
CHECK_BATCH, CHECK_STEPS = 64, 200          # the defaults
CHECK_MAX_BATCH, CHECK_MAX_STEPS = 1024, 10_000
CHECK_WHY = ("the check overfits one small batch: a few dozen images show whether the model learns, and every step "
             "computes the whole batch")

# An upper bound on the work one run may ask for: 100,000 epochs of the full digits set are years of CPU time and of
# a 100-image subset a few hours; `--epochs 1000000000` is a typo that would otherwise train until killed.
MAX_EPOCHS = 100_000
EPOCHS_WHY = (f"more than {MAX_EPOCHS:,} epochs is years of training on the full datasets; give the passes you mean "
              "(12 is the default)")


def _f(default: Any = _UNSET, help: str = "", *, key: str | None = None, range: str | None = None,
       choices: tuple[str, ...] | None = None, factory: Any = _UNSET, const: Any = None, why: str | None = None) -> Any:
    """A config field. ``key``: its flat name when it differs from the field's; ``range``: an interval such as
    "[0, 1)" or "[1, inf)"; ``choices``: the valid strings; ``const``: the value of its flag given without one
    (``--diagnose`` alone means ``--diagnose 10``); ``why``: why a finite upper bound (said when it is passed)."""
    meta: dict[str, Any] = {"help": help}
    for name, value in (("key", key), ("range", range), ("choices", choices), ("const", const), ("why", why)):
        if value is not None:
            meta[name] = value
    return field(default=default, default_factory=factory, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    """What the run trains on."""

    dataset: str = _f("digits", "dataset name (see `convscope data list`) or folder:PATH")
    data_dir: str | None = _f(None, "where datasets are looked for and downloaded (default: the user cache)")
    train_subset: int = _f(0, "train on a class-stratified subset of N images (0 = all); quick trials",
                           range="[0, inf)")
    val_fraction: float = _f(0.0, "hold out this fraction of train (stratified, fixed seed) for validation",
                             range="[0, 1)")


@dataclass(frozen=True)
class ModelConfig:
    """The network: a registry name, its arguments, and how its weights start."""

    name: str = _f("fast2", "model name from the registry (see `convscope models`); fast2 since speed round 2, "
                   "fast before", key="model")
    args: dict = _f(help="model-specific arguments, e.g. {\"width\": 48}", key="model_args", factory=dict)
    dropout: float | None = _f(None, "overrides the model's dropout where it has a 'dropout' argument",
                               range="[0, 1)")
    init: str = _f("default", "weight init of conv and linear layers", choices=("default", "kaiming", "xavier"))


@dataclass(frozen=True)
class OptimConfig:
    """The optimizer, its loss, and the weight average evaluated in place of the raw weights."""

    batch_size: int | None = _f(None, "images per optimizer step (default: 256; the dataset may declare its own, "
                                "e.g. 128 on Fashion-MNIST)", range="[1, inf)")
    optimizer: str = _f("sgd", "optimizer", choices=("sgd", "adam", "adamw", "adadelta"))
    lr: float | None = _f(None, "peak learning rate (per step, for batch_size images; default: 0.1, the dataset may "
                          "declare its own, e.g. 0.05 on Fashion-MNIST: the same rate per image at its batch of 128)",
                          range="[0, inf)")
    momentum: float = _f(0.9, "SGD momentum (Adam's beta1 is left at 0.9)", range="[0, 1)")
    nesterov: bool = _f(True, "Nesterov momentum (SGD)")
    weight_decay: float = _f(5e-4, "L2 on every parameter (decoupled for adamw)", range="[0, inf)")
    label_smoothing: float = _f(0.1, "label smoothing of the cross-entropy targets", range="[0, 1)")
    grad_clip: float | None = _f(None, "clip the global gradient norm to this value", range="(0, inf)")
    ema: float = _f(0.99, "decay of an exponential moving average of the weights, per step (0 = off); "
                    "evaluation and the saved model use the average", range="[0, 1)")


@dataclass(frozen=True)
class ScheduleConfig:
    """How long the run trains and the learning rate as a function of the step."""

    epochs: int | None = _f(None, "passes over the training set (default: 12; the dataset may declare its own, "
                            "e.g. 5 on Fashion-MNIST)", range=f"[1, {MAX_EPOCHS}]", why=EPOCHS_WHY)
    name: str = _f("onecycle", "learning-rate schedule", key="schedule",
                   choices=("constant", "step", "cosine", "onecycle"))
    warmup_epochs: float = _f(0.0, "linear warmup from 0 over this many epochs (not for onecycle)", range="[0, inf)")
    step_epochs: int = _f(1, "'step' schedule: multiply by step_gamma every this many epochs", range="[1, inf)")
    step_gamma: float = _f(0.7, "'step' schedule: the factor", range="(0, inf)")


@dataclass(frozen=True)
class AugmentConfig:
    """Random changes to each training batch (pure batched functions of one seeded generator)."""

    translate: int | None = _f(None, "augmentation: random shift of up to this many pixels, zero fill (default: 2; "
                               "the dataset may declare its own, e.g. 0 on Fashion-MNIST)", range="[0, inf)")
    hflip: bool | None = _f(None, "augmentation: random horizontal flip (default: on where the dataset allows "
                            "mirrors, e.g. Fashion-MNIST and CIFAR; off for digits)")
    cutout: int = _f(0, "augmentation: zero a random square of this side (0 = off)", range="[0, inf)")
    rotate: float = _f(0.0, "augmentation: random rotation of up to this many degrees (0 = off)", range="[0, 180]")
    scale: float = _f(0.0, "augmentation: random zoom by a factor in [1/(1+s), 1+s] (0 = off)", range="[0, 10]")
    aspect: float = _f(0.0, "augmentation: random width/height stretch in [1/(1+a), 1+a] (0 = off)",
                       range="[0, 10]")
    stroke: float | None = _f(None, "augmentation: random stroke width, blended up to this fraction with a 3x3 "
                              "dilation or erosion (default: 0.6 for handwritten digits, else 0)", range="[0, 1]")
    blur: float | None = _f(None, "augmentation: random Gaussian blur, sigma up to this many pixels "
                            "(default: 0.8 for handwritten digits, else 0)", range="[0, 10]")


@dataclass(frozen=True)
class EvalConfig:
    """How the run is evaluated: test-time averaging and the validation stop rule."""

    tta: bool = _f(True, "test-time augmentation: average the logits of each image and its mirror (only for "
                   "runs trained with --hflip on a dataset that allows flips)")
    early_stopping: int | None = _f(None, "stop after this many epochs without a better validation accuracy "
                                    "(the run then ends with the best epoch's weights)", range="[1, inf)")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the computation runs, and the run's bookkeeping."""

    engine: str = _f("torch", "torch, or numpy: the from-scratch reference layers (CPU, sequential models)",
                     choices=("torch", "numpy"))
    conv_algorithm: str = _f("im2col", "numpy engine: the convolution algorithm",
                             choices=("direct", "im2col", "matrix", "fft"))
    precision: str = _f("auto", "auto: bf16 autocast where the hardware has native bf16, else fp32",
                        choices=("auto", "fp32", "bf16"))
    channels_last: bool = _f(True, "channels-last memory format for convolutions")
    threads: int | None = _f(None, "torch intra-op threads (default: the CPUs this process may use less those other "
                                   "programs keep busy, re-counted as it trains; --deterministic: all it may use)",
                             range="[1, inf)")
    device: str = _f("auto", "auto: cuda when available, else cpu")
    sync_bn: bool = _f(False, "several processes (torchrun / --nproc): BatchNorm statistics of the whole global "
                       "batch (SyncBatchNorm)")
    deterministic: bool = _f(False, "deterministic kernels; resumed runs end bit-identical")
    seed: int = _f(0, "seed of initialisation, data order, augmentation and dropout (0 to 2**63-1)")
    checkpoint_every: int = _f(100, "steps between checkpoints (and one at each epoch end)", range="[1, inf)")
    max_bad_steps: int = _f(20, "stop after this many non-finite steps in a row", range="[1, inf)")
    log_every: int = _f(10, "steps between per-step lines in metrics.jsonl", range="[1, inf)")
    track_sparsity: bool = _f(False, "per epoch: fraction of exactly-zero activations per layer, in metrics.jsonl")
    diagnose: int = _f(0, "every N steps: per-layer activation, weight, gradient and update statistics in "
                       "diagnostics.jsonl, read by `convscope doctor` (0 = off; the flag alone: every 10 steps)",
                       range="[0, inf)", const=10)
    tensorboard: bool = _f(False, "TensorBoard event files in RUN/tensorboard: scalars per step, the diagnostics "
                           "as histograms per epoch, first-layer filters and the confusion matrix as images "
                           "(needs the tensorboard package: pip install 'convscope[tensorboard]')")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run, in sections. Units are given in the fields' help texts.

    Flat names read through to their section (``cfg.lr`` is ``cfg.optim.lr``) for callers written before the
    sections, except ``model`` and ``schedule``, which name sections (``cfg.model.name``, ``cfg.schedule.name``).
    """

    name: str | None = _f(None, "run name; default \"<model>-<dataset>\"")
    data: DataConfig = _f(factory=DataConfig)
    model: ModelConfig = _f(factory=ModelConfig)
    optim: OptimConfig = _f(factory=OptimConfig)
    schedule: ScheduleConfig = _f(factory=ScheduleConfig)
    augment: AugmentConfig = _f(factory=AugmentConfig)
    eval: EvalConfig = _f(factory=EvalConfig)
    runtime: RuntimeConfig = _f(factory=RuntimeConfig)

    def __getattr__(self, key: str) -> Any:   # only called when normal lookup fails: flat names
        where = FLAT.get(key)
        if where is None or where[0] not in self.__dict__:
            raise AttributeError(f"TrainConfig has no field {key!r}; valid keys: {', '.join(FIELDS)}")
        return getattr(self.__dict__[where[0]], where[1])

    def validate(self) -> TrainConfig:
        """Every field against its metadata (finite, range, choices), then the rules that tie fields together."""
        flat = self.flat()
        for key in FLOAT_KEYS:   # nan passes every comparison (nan < 0 is False): refuse it first
            if flat[key] is not None and not math.isfinite(flat[key]):
                raise ConfigError(f"{key} must be a finite number, got {flat[key]}", arg=key)
        try:
            check_run_name(self.name)
        except ConfigError as e:
            raise ConfigError(str(e), arg="name") from None
        for key, f in FIELDS.items():
            value = flat[key]
            if "choices" in f.metadata and value not in f.metadata["choices"]:
                raise ConfigError(f"{key}: {value!r} is not one of {', '.join(f.metadata['choices'])}", arg=key)
            if "range" in f.metadata and value is not None:
                _check_range(key, value, f.metadata["range"], f.metadata.get("why"))
        check_seed(self.runtime.seed, "seed")
        epochs, warmup = self.schedule.epochs, self.schedule.warmup_epochs
        if epochs is not None and warmup > 0 and warmup >= epochs:   # the rate would never reach its peak
            raise ConfigError(f"warmup_epochs {warmup:g} is not shorter than the run ({epochs} epochs): the learning "
                              f"rate would never reach lr; give warmup_epochs below {epochs} (e.g. "
                              f"{max(epochs / 10, 0.1):g})", arg="warmup_epochs")
        if self.eval.early_stopping is not None and self.data.val_fraction == 0.0:
            raise ConfigError("early_stopping needs a validation split: set val_fraction (e.g. 0.1)",
                              arg="early_stopping")
        if self.runtime.engine == "numpy":
            if self.optim.optimizer not in ("sgd", "adam"):
                raise ConfigError(f"optimizer: the numpy engine has sgd and adam, not {self.optim.optimizer!r}",
                                  arg="optimizer")
            if self.runtime.device not in ("auto", "cpu"):
                raise ConfigError(f"device: the numpy engine runs on the CPU, not {self.runtime.device!r}",
                                  arg="device")
            if self.runtime.diagnose:
                raise ConfigError("diagnose: the per-layer diagnostics hook torch modules; the numpy engine has none. "
                                  "Train with --engine torch, or drop --diagnose", arg="diagnose")
        return self

    @property
    def run_name(self) -> str:
        return self.name or f"{self.model.name}-{self.data.dataset.replace('folder:', 'folder-').replace('/', '_')}"

    def to_dict(self) -> dict[str, Any]:
        """The config in sections, as a run's config.json holds it."""
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """The config as flat keys (``{"lr": 0.1, "model": "fast2", ...}``), the names of the CLI flags."""
        return {key: (self.name if sec is None else getattr(getattr(self, sec), fld)) for key, (sec, fld) in
                FLAT.items()}

    def replace(self, **values: Any) -> TrainConfig:
        """A copy with the given flat keys changed (not validated: :meth:`validate` it)."""
        unknown = sorted(set(values) - set(FLAT))
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(FIELDS)}")
        by_section: dict[str | None, dict[str, Any]] = {}
        for key, value in values.items():
            sec, fld = FLAT[key]
            by_section.setdefault(sec, {})[fld] = value
        top = by_section.pop(None, {})
        sections = {sec: dataclasses.replace(getattr(self, sec), **v) for sec, v in by_section.items()}
        return dataclasses.replace(self, **{**top, **sections})


SECTIONS: dict[str, type] = {k: t for k, t in typing.get_type_hints(TrainConfig).items() if k != "name"}
# flat key -> (section, field); the run name is the one top-level field (section None)
FLAT: dict[str, tuple[str | None, str]] = {"name": (None, "name")}
FIELDS: dict[str, dataclasses.Field] = {"name": next(f for f in dataclasses.fields(TrainConfig) if f.name == "name")}
HINTS: dict[str, Any] = {"name": str | None}
for _sec, _cls in SECTIONS.items():
    _hints = typing.get_type_hints(_cls)   # real types, not the strings of the annotations
    for _f_ in dataclasses.fields(_cls):
        _key = _f_.metadata.get("key", _f_.name)
        FLAT[_key], FIELDS[_key], HINTS[_key] = (_sec, _f_.name), _f_, _hints[_f_.name]
FLOAT_KEYS = tuple(k for k, h in HINTS.items() if float in (typing.get_args(h) or (h,)))  # every float option
CHOICES: dict[str, tuple[str, ...]] = {k: f.metadata["choices"] for k, f in FIELDS.items() if "choices" in f.metadata}


def _check_range(key: str, value: float, interval: str, why: str | None = None) -> None:
    """``value`` inside ``interval`` ("[0, 1)", "(0, inf)", "[1, inf)"), or a ConfigError saying so in words
    (``why``: the reason for a finite upper bound, added when the value is above it)."""
    lo_text, hi_text = interval[1:-1].split(",")
    lo, hi = float(lo_text), float(hi_text)
    ok = (value >= lo if interval[0] == "[" else value > lo) and (value <= hi if interval[-1] == "]" else value < hi)
    if ok:
        return
    below = value < lo if interval[0] == "[" else value <= lo
    if hi == math.inf or (below and why):   # a bound on work is named only when it is passed
        want = ("must be positive" if interval[0] == "(" else "must not be negative") if lo == 0 else \
            f"must be at least {lo:g}"
        raise ConfigError(f"{key} {want}, got {value}", arg=key)
    reason = f"; {why}" if why else ""
    raise ConfigError(f"{key} must lie in {interval}, got {value}{reason}", arg=key)


# Defaults that depend on the dataset: None in a config until :func:`resolve` fills them, with what the
# dataset registry declares for the dataset (convscope.data.registry, DatasetInfo.train_defaults), else these.
GENERIC_DEFAULTS: dict[str, Any] = {"epochs": 12, "translate": 2, "stroke": 0.0, "blur": 0.0, "batch_size": 256,
                                    "lr": 0.1}

# Keys added after runs were first recorded (and "model", whose default changed; every config.json records it, so
# this only matters to a hand-written one), with the value that reproduces a run recorded without them.
KEYS_ADDED_LATER: dict[str, Any] = {"model": "fast", "rotate": 0.0, "scale": 0.0, "aspect": 0.0, "stroke": 0.0,
                                    "blur": 0.0, "diagnose": 0, "tensorboard": False}

# Options our own ablations rejected and convscope removed (bench/results/recipe_ablation_round2_fashion-mnist.json:
# Lookahead and progressive resizing did not shorten the run; shifted test-time views cost 0.07 points), with
# the value that meant "off". Configs may still carry them switched off; runs recorded with them on still load.
RETIRED: dict[str, Any] = {"lookahead": 0, "lookahead_alpha": None, "low_res": 0, "low_res_epochs": 0,
                           "tta_shift": 0}


def retired_settings(values: Any) -> dict[str, Any]:
    """The removed options a (flat, pre-removal) config dict switched on: {key: value}."""
    if not isinstance(values, dict):
        return {}
    return {k: values[k] for k, off in RETIRED.items() if k in values and off is not None and values[k] != off}


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


def _flat_values(values: Any, source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(flat keys -> values, retired keys -> values) of a config dict written flat, in sections, or mixed;
    strict on keys (each given once) and types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of keys to values, got {type(values).__name__}")
    flat: dict[str, Any] = {}
    retired: dict[str, Any] = {}

    def put(key: str, value: Any, where: str) -> None:
        if key in flat:
            raise ConfigError(f"{source}: {key} is given twice (flat and in its section); give it once")
        if not _type_ok(value, HINTS[key]):
            raise ConfigError(f"{source}: {where} = {value!r} has the wrong type: expected {type_name(HINTS[key])}; "
                              f"valid keys: {', '.join(FIELDS)}")
        flat[key] = float(value) if key in FLOAT_KEYS and isinstance(value, int) else value

    for key, value in values.items():
        if key in SECTIONS and isinstance(value, dict):
            by_field = {FLAT[k][1]: k for k, (s, _) in FLAT.items() if s == key}
            unknown = sorted(set(value) - set(by_field))
            if unknown:
                raise ConfigError(f"{source}: unknown key(s) {', '.join(f'{key}.{u}' for u in unknown)}; valid keys "
                                  f"of {key}: {', '.join(by_field)}")
            for fld, v in value.items():
                put(by_field[fld], v, f"{key}.{fld}")
        elif key in FLAT:
            put(key, value, key)
        elif key in RETIRED:
            retired[key] = value
        elif key in SECTIONS:
            raise ConfigError(f"{source}: {key} is a section: expected a mapping of its keys such as "
                              f"{{{key!r}: {{...}}}}, got {type(value).__name__}; keys of {key}: "
                              f"{', '.join(f for k, (s, f) in FLAT.items() if s == key)}")
        else:
            raise ConfigError(f"{source}: unknown key(s) {key}; valid keys: {', '.join(FIELDS)} (or sections "
                              f"{', '.join(SECTIONS)})")
    return flat, retired


def _build(flat: dict[str, Any], given: set[str], source: str | None) -> TrainConfig:
    """The validated config of ``flat``; a value refused by :meth:`TrainConfig.validate` that came from ``given``
    (the keys of the file or dict being read) is reported as ``"SOURCE: key ..."``, so an error names the file
    that holds the value as a flag's error names the flag. ``source`` None: the caller names its keys itself
    (the command line: the error keeps ``arg``, which the CLI turns into the flag)."""
    try:
        return TrainConfig().replace(**flat).validate()
    except ConfigError as e:
        if source is None:   # a dict or the flags: the key (or its flag) is named only for a value given here
            if e.arg in given:
                raise
            raise ConfigError(str(e)) from None
        raise ConfigError(f"{source}: {e}") from None


def given_keys(values: dict[str, Any], source: str = "config") -> set[str]:
    """The flat keys a config dict (flat, in sections or mixed) sets, checked as :func:`config_from_dict` does."""
    return set(_flat_values(values, source)[0])


def config_from_dict(values: dict[str, Any], base: TrainConfig | None = None,
                     source: str | None = None) -> TrainConfig:
    """A validated TrainConfig: ``base`` (default: defaults) updated with ``values``, flat keys or sections;
    strict on keys and types. An option convscope removed is refused unless it is switched off. ``source``
    names where ``values`` came from (a file's path) at the start of every error about a value they gave;
    None (a dict in Python, the command line's flags): the error starts with the key and keeps
    ``ConfigError.arg``, which the CLI turns into the flag."""
    label = source if source is not None else "config"
    flat, retired = _flat_values(values, label)
    on = retired_settings(retired)
    if on:
        raise ConfigError(f"{label}: {', '.join(f'{k}={v!r}' for k, v in on.items())}: removed from convscope "
                          "(our ablations found no gain: bench/results/recipe_ablation_round2_fashion-mnist.json); "
                          "drop the key")
    return _build({**(base or TrainConfig()).flat(), **flat}, set(flat), source)


def recorded_config(values: dict[str, Any], source: str) -> TrainConfig:
    """The config of a run directory's ``config.json`` (flat or in sections): keys it predates are filled with the
    values that reproduce it (not today's defaults), so resuming an older run continues the same run; options
    convscope removed are dropped (see :func:`retired_settings` for what they were)."""
    flat, _ = _flat_values(values, source)
    return _build({**TrainConfig().flat(), **{k: v for k, v in KEYS_ADDED_LATER.items() if k not in flat}, **flat},
                  set(flat), source)


def require_resolved(cfg: TrainConfig, who: str) -> None:
    """Engines and the batch feeder take a resolved config: dataset-dependent defaults (epochs, translate) are
    None until :func:`resolve` settles them."""
    flat = cfg.flat()
    unset = [k for k in GENERIC_DEFAULTS if flat[k] is None]
    if unset:
        raise ConfigError(f"{who}: {', '.join(unset)} not set; resolve the config first "
                          "(convscope.training.setup.prepare(cfg) returns the config that runs), or set them")


def dataset_defaults(dataset: str) -> dict[str, Any]:
    """The dataset-dependent defaults for ``dataset``: what its registry entry declares, else the generic ones."""
    from ..data.registry import train_defaults

    declared = train_defaults(dataset)
    unknown = sorted(set(declared) - set(GENERIC_DEFAULTS))
    if unknown:   # a registry entry may only set what depends on the dataset
        raise ConfigError(f"dataset {dataset!r}: the registry declares defaults for {', '.join(unknown)}; only "
                          f"{', '.join(GENERIC_DEFAULTS)} depend on the dataset")
    return {**GENERIC_DEFAULTS, **declared}


def resolve(cfg: TrainConfig, *, hflip_ok: bool, device: str, native_bf16: bool) -> TrainConfig:
    """``cfg`` with every value that depends on the engine, the dataset or the machine settled: the config
    that actually runs. ``hflip_ok``: whether the training set allows mirrored images; ``device``: the device
    ``cfg.runtime.device`` resolves to; ``native_bf16``: whether that device runs bf16 autocast natively.

    Unset dataset-dependent keys (epochs, translate, stroke, blur, batch_size, lr) take the dataset's declared
    defaults. The numpy engine trains plain fp32 on the CPU (no weight average, no channels-last, no test-time flips);
    test-time flips apply only to runs trained with flips. Resolving a resolved config changes nothing."""
    cfg.validate()
    if cfg.augment.hflip and not hflip_ok:
        raise ConfigError(f"hflip: dataset {cfg.data.dataset!r} does not allow horizontal flips "
                          "(mirrored digits change meaning); remove --hflip")
    hflip = hflip_ok if cfg.augment.hflip is None else cfg.augment.hflip  # default: flips where the data allow
    changes: dict[str, Any] = {"device": device, "hflip": hflip, "tta": cfg.eval.tta and hflip}
    flat = cfg.flat()
    changes.update({k: v for k, v in dataset_defaults(cfg.data.dataset).items() if flat[k] is None})
    if cfg.runtime.engine == "numpy":
        changes.update(device="cpu", channels_last=False, ema=0.0, tta=False, precision="fp32")
    elif cfg.runtime.precision == "auto":
        changes["precision"] = "bf16" if native_bf16 else "fp32"
    return cfg.replace(**changes).validate()


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


def recipe(name: str) -> TrainConfig:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; valid: {', '.join(RECIPES)}")
    return config_from_dict(RECIPES[name], source=f"recipe {name}")
