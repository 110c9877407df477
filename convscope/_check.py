"""The validators, used at the boundary only (public functions, config dataclasses, the CLI's flag types).

Each check takes the value and the argument's Python name, returns the value converted (``int``, ``float``,
``tuple``) and raises :class:`~convscope.errors.ConfigError` whose message starts with that name, says what is
wrong and how to fix it; ``ConfigError.arg`` carries the name so that the CLI can say ``--top-k`` where Python
says ``top_k`` (cli/__init__.py maps them, in one place). Internal functions behind a checked boundary trust
their inputs.

Config dataclasses declare their fields with :func:`option`: the field's metadata (help, range, finiteness,
choices) drives both :func:`check_fields` (called from ``__post_init__``) and the CLI flags
(``cli/_options.py``), so a default or a range is written once.

No torch at import time (``convscope --help`` must not load it; :func:`tensor` imports it when called), nor
anything above ``errors`` and ``_cpus`` (stdlib only): every layer of the package may import this module.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from ._cpus import cpu_limit
from .errors import ConfigError


def fail(name: str, message: str) -> ConfigError:
    """A ConfigError for argument ``name``: ``"name: message"``, with ``.arg`` set for the CLI's flag mapping."""
    return ConfigError(f"{name}: {message}", arg=name)


def _num(v: float) -> str:
    return str(v) if isinstance(v, int) else f"{v:g}"


def _range(lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"{'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"above {_num(lo)}" if lo_open else f"at least {_num(lo)}"
    return f"below {_num(hi)}" if hi_open else f"at most {_num(hi)}"


def is_int(value: object) -> bool:
    """An integer that is not a bool (``True`` is an ``int`` to Python, never a count to a user)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def integer(value: object, name: str, lo: int | None = None, hi: int | None = None, *, fix: str = "") -> int:
    """An int (numpy ints too, not bools, not floats) in ``[lo, hi]``."""
    if not is_int(value):
        raise fail(name, f"expected a whole number{' ' + _range(lo, hi) if lo is not None or hi is not None else ''}"
                         f", got {value!r}{fix and '; ' + fix}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise fail(name, f"must be {_range(lo, hi)}, got {value!r}{fix and '; ' + fix}")
    return int(value)


SEED_MAX = 2**63 - 1   # torch.manual_seed takes [-2**63, 2**64); one range for every seed convscope accepts
SAMPLER_SEED_MAX = 2**32 - 1   # Optuna's samplers seed numpy's RandomState, which takes [0, 2**32 - 1]


def seed(value: object, name: str = "seed", hi: int = SEED_MAX) -> int:
    """A seed: a whole number in [0, hi] (not a bool, not a float such as 1e23), ``hi`` 2**63 - 1 unless the
    consumer takes fewer bits (``tune``'s sampler seed: :data:`SAMPLER_SEED_MAX`): the one check behind every seed
    convscope accepts (train, config files, visualize, refine, explain audits, tune)."""
    return integer(value, name, 0, hi, fix="use a seed such as 0, 1 or 42")


def threads(value: int | None, name: str = "threads") -> int | None:
    """A torch thread count of at most the CPUs this process may use (None: convscope's load-aware choice): the
    affinity mask capped by the cgroup quota (:func:`convscope._cpus.cpu_limit`), not the machine's count, which
    a container or ``taskset`` may not give us. More threads than CPUs only slow down (16 threads on 2 cores: a
    6 s run took over 100 s), and a huge count can crash torch. The one check behind every ``threads`` convscope
    accepts (train, refine, serve, the inspection commands)."""
    if value is not None:
        cpus = cpu_limit()
        if value > cpus:
            raise fail(name, f"must be at most {cpus} (the CPUs this process may use: affinity mask / cgroup "
                             f"quota), got {value}: more threads than CPUs only slow a run down; give {cpus} or "
                             "fewer, or leave it out for a count that follows the machine's load")
    return value


def number(value: object, name: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False) -> float:
    """A finite real number (not a bool, not NaN or infinite) in the range; ``lo_open``: strictly above ``lo``."""
    if not isinstance(value, Real) or isinstance(value, bool):
        raise fail(name, f"expected a number, got {value!r}")
    if not math.isfinite(value):
        raise fail(name, f"must be a finite number, got {value!r}")
    if (lo is not None and (value <= lo if lo_open else value < lo)) or \
            (hi is not None and (value >= hi if hi_open else value > hi)):
        if lo == 0 and lo_open and hi is None:
            raise fail(name, f"must be positive, got {value:g}")
        raise fail(name, f"must be {_range(lo, hi, lo_open, hi_open)}, got {value:g}")
    return float(value)


def choice(value: object, name: str, choices: Sequence[str]) -> str:
    """One of ``choices`` (strings)."""
    if not isinstance(value, str) or value not in choices:
        raise fail(name, f"{value!r} is not one of {', '.join(choices)}")
    return value


def text(value: object, name: str, example: str = "") -> str:
    """A non-blank string."""
    if not isinstance(value, str) or not value.strip():
        raise fail(name, f"expected a non-empty name{f' such as {example!r}' if example else ''}, got {value!r}")
    return value


def names(value: object, name: str, choices: Sequence[str] | None = None) -> tuple[str, ...]:
    """A non-empty list or tuple of names (from ``choices`` when given). A bare string is refused: iterated,
    ``'top'`` would be ``'t', 'o', 'p'``."""
    if isinstance(value, str):
        raise fail(name, f"expected a list or tuple of names, e.g. ({value!r},), got the string {value!r}")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise fail(name, f"expected a list of names (str), e.g. {tuple(choices or ('a', 'b'))[:2]!r}, got {value!r}")
    bad = [v for v in value if choices is not None and v not in choices]
    if bad or not value:
        raise fail(name, f"unknown {bad or 'none given'}; valid: {', '.join(choices or ())}")
    return tuple(value)


def integers(value: object, name: str, lo: int | None = None, hi: int | None = None, *,
             unique: bool = False) -> tuple[int, ...]:
    """A non-empty list or tuple of ints in ``[lo, hi]`` (a string such as ``'0,1'`` is refused, not parsed:
    the API takes ints, the CLI parses text)."""
    if not isinstance(value, (list, tuple)) or not all(is_int(v) for v in value):
        raise fail(name, f"expected a list of whole numbers, e.g. (0, 1, 2), got {value!r}")
    if not value:
        raise fail(name, "empty; give at least one")
    bad = [int(v) for v in value if (lo is not None and v < lo) or (hi is not None and v > hi)]
    if bad:
        raise fail(name, f"each must be {_range(lo, hi)}, got {bad}")
    if unique and len(set(value)) != len(value):
        raise fail(name, f"repeated values in {tuple(value)}; give each once")
    return tuple(int(v) for v in value)


def instance(value: object, name: str, kind: type | tuple[type, ...], what: str) -> Any:
    """``value`` of type ``kind``; ``what`` says what is expected (and how to make one)."""
    if not isinstance(value, kind):
        raise fail(name, f"expected {what}, got {type(value).__name__}")
    return value


def tensor(value: object, name: str, *, ndim: int | None = None, kinds: str = "f", finite: bool = False,
           fix: str = "") -> Any:
    """A torch tensor with values (not on the ``meta`` device), of ``ndim`` dimensions, whose dtype kind is in
    ``kinds`` (``f`` floating, ``i`` integer, ``b`` bool; complex is never accepted), finite when ``finite``.
    ``fix`` says what to give instead (appended to every message)."""
    import torch

    tail = f"; {fix}" if fix else ""
    if not isinstance(value, torch.Tensor):
        raise fail(name, f"expected a torch tensor, got {type(value).__name__}{tail}")
    if value.is_meta:
        raise fail(name, f"is a meta tensor (a shape without values: nothing can be computed from it){tail}")
    kind = ("c" if value.is_complex() else "f" if value.is_floating_point() else "b" if value.dtype == torch.bool
            else "i")
    if kind not in kinds:
        want = {"f": "floating-point", "i": "integer", "b": "bool"}
        raise fail(name, f"expected a {' or '.join(want[k] for k in kinds)} tensor, got dtype {value.dtype}{tail}")
    if ndim is not None and value.ndim != ndim:
        raise fail(name, f"expected {ndim} dimensions, got shape {tuple(value.shape)}{tail}")
    if finite and kind == "f" and not bool(torch.isfinite(value).all()):
        raise fail(name, f"holds NaN or infinite values{tail}")
    return value


def path(value: object, name: str, example: str = "runs/my-run") -> Path:
    """A file-system path given as a non-blank ``str`` or an ``os.PathLike`` naming a text path; ints, bytes,
    ``""`` (which would mean the current folder) and anything else are refused."""
    import os

    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str) or not text.strip():
        got = repr(value) if isinstance(value, (str, bytes)) else type(value).__name__
        raise fail(name, f"expected a path (str or pathlib.Path) such as {example!r}, got {got}")
    return Path(text)


def distinct_path(path: Path, name: str, protected: dict[str, Path]) -> Path:
    """``path`` (to be written) must not be, after symlinks, any of the ``protected`` files (label -> path)."""
    target = path.resolve()
    for label, p in protected.items():
        if p.resolve() == target or (p.exists() and path.exists() and p.samefile(path)):
            raise fail(name, f"{path} is {label}; writing there would destroy it; give another file name")
    return path


def replaceable(path: Path, name: str, marker: bytes | Callable[[bytes], bool], what: str, fix: str) -> Path:
    """``path`` (to be written) is new, or an earlier output of ours that may be replaced: a regular file whose
    first 4 KiB hold ``marker`` (a report's title, a PNG text chunk) or, for a callable ``marker``, pass it (where
    the mark must sit in the file's structure), never a user's notes.txt or a run's model.safetensors that
    happens to stand there (symlinks followed). ``what``: the output in words ("a convscope report"); ``fix``:
    what to give instead."""
    if not os.path.lexists(path):
        return path
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(4096)
        if marker(head) if callable(marker) else marker in head:
            return path
    raise fail(name, f"{path} exists and is not {what}; convscope replaces only its own earlier output, never "
                     f"another file; {fix}")


# -- the pictures a command writes where the user says (--png, --svd-png, --out) ---------------------------------

OUTPUT_KEY = "convscope-output"   # the PNG text chunk key of a picture written to a user-named path


def output_mark(command: str) -> bytes:
    """The PNG text chunk (``tEXt`` key NUL value) a picture written by ``convscope COMMAND`` carries."""
    return b"tEXt" + OUTPUT_KEY.encode() + b"\0" + command.encode()


def output_file(path: str | os.PathLike[str], flag: str, command: str) -> Path:
    """``path`` given to ``flag`` of ``convscope COMMAND`` may be written: new, or a picture an earlier run of
    the same command wrote there (its text chunk says so, see :func:`output_mark`); never a run's curve.png, a
    user's photo or any other file that happens to stand there. The one guard of every writer flag."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_symlink() and not path.is_file():
        return path     # a folder, FIFO or device: the atomic writer refuses it in its own words ("named pipe")
    return replaceable(path, flag, output_mark(command), f"a picture an earlier `convscope {command}` wrote",
                       f"give {flag} a new file name, or move {Path(path).name} away first")


# -- config fields: one declaration drives the check and the CLI flag --------------------------------------------

def option(default: Any, help: str, *, kind: str | None = None, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, hi_open: bool = False, choices: Sequence[str] | None = None, flag: str | None = None,
           metavar: str | None = None, cli: bool = True, unique: bool = False,
           check: Callable[[Any, str], Any] | None = None) -> Any:
    """A dataclass field whose metadata says how to check it and how the CLI offers it.

    ``kind``: ``int``, ``float``, ``str``, ``choice``, ``bool``, ``ints`` (comma-separated on the command line),
    ``names`` (comma-separated, each from ``choices``), inferred from ``default`` when left out. ``lo``/``hi``:
    the allowed range (``*_open``: excluded); floats are always finite. A default of None means "optional":
    None passes the check. ``flag``: the CLI flag (default ``--`` + the name with dashes); ``cli=False``: no flag.
    ``check(value, name)``: a further check run after the declared one."""
    if kind is None:
        kind = ("choice" if choices is not None else "bool" if isinstance(default, bool) else
                "int" if isinstance(default, int) else "float" if isinstance(default, float) else
                "str" if isinstance(default, str) else None)
        if kind is None:
            raise TypeError(f"option: give kind= for default {default!r}")
    meta = {"help": help, "kind": kind, "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open,
            "choices": tuple(choices) if choices is not None else None, "flag": flag, "metavar": metavar,
            "cli": cli, "unique": unique, "check": check}
    if isinstance(default, (list, dict, set)):
        raise TypeError("option: use a tuple default, not a mutable list/dict/set")
    return dataclasses.field(default=default, metadata={"option": meta})


def options(cls: type) -> list[tuple[dataclasses.Field, dict[str, Any]]]:
    """(field, option metadata) of every field of ``cls`` declared with :func:`option`."""
    return [(f, f.metadata["option"]) for f in dataclasses.fields(cls) if "option" in f.metadata]


def check_value(value: Any, name: str, meta: dict[str, Any], optional: bool = False) -> Any:
    """``value`` checked (and converted) by a field's option metadata."""
    if value is None and optional:
        return None
    kind, lo, hi = meta["kind"], meta["lo"], meta["hi"]
    if kind == "int":
        value = integer(value, name, lo, hi)
    elif kind == "float":
        value = number(value, name, lo, hi, lo_open=meta["lo_open"], hi_open=meta["hi_open"])
    elif kind == "choice":
        value = choice(value, name, meta["choices"])
    elif kind == "str":
        value = text(value, name)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise fail(name, f"expected True or False, got {value!r}")
    elif kind == "ints":
        value = integers(value, name, lo, hi, unique=meta["unique"])
    elif kind == "names":
        value = names(value, name, meta["choices"])
    if meta["check"] is not None:
        value = meta["check"](value, name)
    return value


def check_fields(obj: Any) -> None:
    """Check every :func:`option` field of the dataclass instance ``obj``, storing the converted values."""
    for f, meta in options(type(obj)):
        object.__setattr__(obj, f.name, check_value(getattr(obj, f.name), f.name, meta, optional=f.default is None))


def from_dict(cls: type, values: Any, name: str = "config") -> Any:
    """``cls(**values)``; anything but a dict, or an unknown key, is an error that lists the valid keys."""
    keys = [f.name for f in dataclasses.fields(cls)]
    if not isinstance(values, dict):
        raise fail(name, f"expected a {cls.__name__} or a dict of its fields ({', '.join(keys)}), got "
                         f"{type(values).__name__}")
    unknown = [k for k in values if k not in keys]
    if unknown:
        raise fail(name, f"unknown key(s) {', '.join(map(repr, unknown))}; valid: {', '.join(keys)}")
    return cls(**values)
