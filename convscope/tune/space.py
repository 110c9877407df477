"""The search space: which training-config keys a study varies, and over what.

A space file is YAML (or JSON/TOML, read by the training config reader), one entry per config key, named by
its flat key (``lr``, as ``convscope train --lr``) or its section path (``optim.lr``)::

    lr:              {type: float, low: 0.01, high: 0.5, log: true}
    weight_decay:    {type: float, low: 1.0e-5, high: 1.0e-2, log: true}
    translate:       {type: int, low: 0, high: 3}
    batch_size:      {type: categorical, choices: [64, 128, 256]}
    optimizer:       {type: categorical, choices: [sgd, adamw]}

``float``: ``low`` < ``high``, optional ``log: true`` (then ``low`` > 0) or ``step``; ``int``: whole ``low`` <=
``high``, optional ``log`` or ``step``; ``categorical``: a non-empty list of ``choices`` (numbers, strings,
booleans, null). Every value the space can produce is checked against the config field's type and range
before the first trial (a space that can only produce invalid configs would fail every trial).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..training.config import (FIELDS, FLAT, HINTS, SECTIONS, TrainConfig, config_from_dict, read_config_file,
                               type_name)

# keys a study must not vary, and why (the message says it)
FIXED: dict[str, str] = {
    "name": "it names the run, not a setting",
    "dataset": "a study compares settings on one dataset",
    "data_dir": "it says where the data are, not how to train",
    "val_fraction": "the validation split is what trials are compared on; it must be the same for all",
    "train_subset": "every trial must train on the same images",
    "seed": "tuning the seed selects noise, not a better setting",
    "device": "it says where a run computes, not how it trains",
    "threads": "it says how a run uses the machine, not how it trains; give --threads for every trial (with "
               "--jobs N, each trial gets the CPUs divided by N)",
    "checkpoint_every": "bookkeeping, not a setting", "log_every": "bookkeeping, not a setting",
    "model_args": "Optuna's categorical values are scalars; give a model argument's values in separate studies",
}
KINDS = ("float", "int", "categorical")
SPEC_KEYS = {"float": {"type", "low", "high", "log", "step"}, "int": {"type", "low", "high", "log", "step"},
             "categorical": {"type", "choices"}}


@dataclass(frozen=True)
class Param:
    """One searched key: ``key`` (flat config key), ``kind`` (float/int/categorical) and its bounds or choices."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def describe(self) -> str:
        if self.kind == "categorical":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        scale = ", log" if self.log else (f", step {self.step}" if self.step is not None else "")
        return f"{self.kind} [{self.low:g}, {self.high:g}{scale}]"

    def suggest(self, trial: Any) -> Any:
        """The value for this key from an Optuna trial (a retried trial returns the values it had)."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.key, list(self.choices))

    def extremes(self) -> list[Any]:
        """The values that bound what this key can take: both ends, or every choice."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


# The default space for the zoo's recipe (SGD + Nesterov, one-cycle schedule, label smoothing, weight EMA):
# the settings that move the result most, each over a range that contains the default and stays trainable.
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "lr": {"type": "float", "low": 0.01, "high": 0.8, "log": True},                  # default 0.1
    "weight_decay": {"type": "float", "low": 1e-5, "high": 5e-3, "log": True},       # default 5e-4
    "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},                   # default 0.1
    "batch_size": {"type": "categorical", "choices": [64, 128, 256]},                # default 256
    "translate": {"type": "int", "low": 0, "high": 3},                               # augmentation: shift, px
    "rotate": {"type": "float", "low": 0.0, "high": 15.0},                           # augmentation: degrees
}


def _flat_key(name: Any, source: str) -> str:
    if not isinstance(name, str):
        raise ConfigError(f"{source}: key {name!r} is not a config key name; use flat keys such as lr or "
                          "sections such as optim.lr")
    if "." in name:
        sec, _, fld = name.partition(".")
        flat = next((k for k, (s, f) in FLAT.items() if s == sec and f == fld), None)
        if flat is None:
            raise ConfigError(f"{source}: {name}: no such config key; sections: {', '.join(SECTIONS)}; valid "
                              f"keys: {', '.join(FIELDS)}")
        return flat
    if name not in FLAT:
        raise ConfigError(f"{source}: {name}: no such config key; valid keys: {', '.join(FIELDS)}")
    return name


def _number(spec: dict[str, Any], what: str, where: str, integer: bool) -> float | int:
    if what not in spec:
        raise ConfigError(f"{where}: needs {what}")
    v = spec[what]
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or (not integer and not math.isfinite(v)):
        raise ConfigError(f"{where}: {what} must be a {'whole' if integer else 'finite'} number, got {v!r}")
    return v


def parse_param(name: Any, spec: Any, source: str) -> Param:
    """One entry of a space file, checked; ``source`` names the file in errors."""
    key = _flat_key(name, source)
    where = f"{source}: {name}"
    if key in FIXED:
        raise ConfigError(f"{where}: cannot be searched ({FIXED[key]}); set it with the training flags instead")
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping such as {{type: float, low: 0.01, high: 0.5, log: true}}, "
                          f"got {spec!r}")
    kind = spec.get("type")
    if kind not in KINDS:
        raise ConfigError(f"{where}: type must be one of {', '.join(KINDS)}, got {kind!r}")
    unknown = sorted(set(spec) - SPEC_KEYS[kind])
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)} for type {kind}; allowed: "
                          f"{', '.join(sorted(SPEC_KEYS[kind]))}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list, e.g. choices: [64, 128, 256]")
        bad = [c for c in choices if not (c is None or isinstance(c, (bool, int, float, str)))]
        if bad:
            raise ConfigError(f"{where}: choices must be numbers, strings, booleans or null, got {bad[0]!r}")
        if len({repr(c) for c in choices}) != len(choices):
            raise ConfigError(f"{where}: choices repeat a value: {choices}")
        param = Param(key, kind, choices=tuple(choices))
    else:
        integer = kind == "int"
        low, high = _number(spec, "low", where, integer), _number(spec, "high", where, integer)
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"{where}: log must be true or false, got {log!r}")
        step = _number(spec, "step", where, integer) if "step" in spec else None
        if low > high or (low == high and not integer):
            raise ConfigError(f"{where}: low ({low}) must be below high ({high})")
        if log and low <= 0:
            raise ConfigError(f"{where}: a log scale needs low > 0, got {low}")
        if log and step is not None:
            raise ConfigError(f"{where}: give log or step, not both")
        if step is not None and step <= 0:
            raise ConfigError(f"{where}: step must be positive, got {step}")
        param = Param(key, kind, float(low) if not integer else low, float(high) if not integer else high, log,
                      step)
    hint = HINTS[key]
    for value in param.extremes():   # the field's own type and range: one config per end / choice
        try:
            config_from_dict({key: value}, source=where)
        except ConfigError as e:
            msg = str(e).removeprefix(f"{where}: ")
            kind = type_name(hint).removesuffix(" | None")   # a search samples values; None (the default) is not one
            raise ConfigError(f"{where}: {value!r} is not a valid {key} ({kind}): {msg}") from None
    return param


def parse_space(values: Any, source: str) -> tuple[Param, ...]:
    """A space from a mapping of config keys to specs (a space file's content)."""
    if not isinstance(values, dict) or not values:
        raise ConfigError(f"{source}: expected a mapping of config keys to search specs, e.g. "
                          "lr: {type: float, low: 0.01, high: 0.5, log: true}")
    params = [parse_param(name, spec, source) for name, spec in values.items()]
    keys = [p.key for p in params]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"{source}: {', '.join(twice)} given twice (flat and as section.key); give each once")
    return tuple(params)


def load_space(path: str | os.PathLike[str] | None) -> tuple[Param, ...]:
    """The space in the file at ``path`` (YAML, JSON or TOML), or the default space when ``path`` is None."""
    if path is None:
        return parse_space(DEFAULT_SPACE, "the default space")
    if not os.path.lexists(path):
        raise ConfigError(f"space: {path}: no such file; give a search space file (YAML, see docs/tune.md) or leave "
                          "--space out for the default space", arg="space")
    return parse_space(read_config_file(path), str(path))


def check_space_fits(params: tuple[Param, ...], base: TrainConfig, source: str) -> None:
    """Each end of the space applied to ``base`` gives a valid config (rules that tie keys together, such as the
    numpy engine's optimizers, are checked here with the study's own settings)."""
    for p in params:
        for value in p.extremes():
            try:
                config_from_dict({p.key: value}, base, source=source)
            except ConfigError as e:
                raise ConfigError(f"{source}: {p.key} = {value!r} with this study's training options: "
                                  f"{str(e).removeprefix(f'{source}: ')}") from None


def check_space_on_data(params: tuple[Param, ...], base: TrainConfig, source: str) -> None:
    """The space's augmentations against the study's images (the checks of
    :mod:`~convscope.training.plausibility`, which need the image size and the classes): each end alone, then
    every augmentation at its largest at once (the limit of one may depend on another: a stretch with a zoom),
    so that a value a trial would be refused for is refused before the first trial. Data are loaded only when the
    space searches an augmentation and keeps the dataset fixed."""
    from ..training.batches import load_data
    from ..training.plausibility import refuse_senseless

    keys = {p.key for p in params}
    aug = [p for p in params if FLAT[p.key][0] == "augment" and p.key != "hflip"]
    if not aug or keys & {"dataset", "data_dir"}:
        return
    data = load_data(base)
    tops = {p.key: max(v for v in p.extremes() if isinstance(v, (int, float))) for p in aug
            if any(isinstance(v, (int, float)) for v in p.extremes())}
    trials = [{p.key: v} for p in aug for v in p.extremes() if v is not None] + ([tops] if len(tops) > 1 else [])
    for values in trials:
        try:
            refuse_senseless(base.replace(**values).validate(), data)
        except ConfigError as e:
            shown = ", ".join(f"{k} = {v!r}" for k, v in values.items())
            raise ConfigError(f"{source}: {shown} on this study's data: {e}") from None


def space_as_dict(params: tuple[Param, ...]) -> dict[str, dict[str, Any]]:
    """The space in the file format (for the study's record)."""
    out: dict[str, dict[str, Any]] = {}
    for p in params:
        if p.kind == "categorical":
            out[p.key] = {"type": p.kind, "choices": list(p.choices)}
        else:
            out[p.key] = {"type": p.kind, "low": p.low, "high": p.high, **({"log": True} if p.log else {}),
                          **({"step": p.step} if p.step is not None else {})}
    return out
