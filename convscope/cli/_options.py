"""argparse options generated from a typed config's field metadata (``convscope._check.option``): the flag's
name, help, default, choices and range come from the config class, so nothing is restated here. A value the
config would refuse is a usage error naming the flag at parse time (exit 2), not minutes of work first."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

from .._check import check_value, options
from ..errors import ConfigError
from ._types import whole


def flag(name: str, meta: dict[str, Any]) -> str:
    """A config field's CLI flag: declared, or ``--`` and the name with dashes (``eval_every`` -> ``--eval-every``)."""
    return meta["flag"] or "--" + name.replace("_", "-")


def _parse_text(text: str, kind: str) -> Any:
    if kind == "int":
        try:
            return whole(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if kind == "ints":
        try:
            return tuple(whole(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, e.g. 0,1,2, got {text!r}") from None
    if kind == "names":
        return tuple(v.strip() for v in text.split(",") if v.strip())
    return text


def arg_type(name: str, meta: dict[str, Any]) -> Callable[[str], Any]:
    """Text -> the checked value; the config's own check, its message without the leading ``name: ``."""
    def parse(text: str) -> Any:
        try:
            return check_value(_parse_text(text, meta["kind"]), name, meta)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix(f"{name}: ")) from None
    parse.__name__ = meta["kind"]
    return parse


def _shown(default: Any) -> str:
    return ",".join(map(str, default)) if isinstance(default, tuple) else str(default)


def add_options(parser: argparse.ArgumentParser, cls: type, skip: Iterable[str] = ()) -> None:
    """One flag per CLI field of the config class ``cls`` (``dest`` = the field name)."""
    skip = set(skip)
    for f, meta in options(cls):
        if not meta["cli"] or f.name in skip:
            continue
        helptext = meta["help"] + ("" if f.default is None or f.default is False else f" (default {_shown(f.default)})")
        kw: dict[str, Any] = {"dest": f.name, "default": f.default, "help": helptext}
        if meta["kind"] == "bool":
            kw["action"] = "store_true"
        elif meta["kind"] == "choice":
            kw["choices"] = meta["choices"]
        else:
            kw["type"] = arg_type(f.name, meta)
            kw["metavar"] = meta["metavar"] or ("LIST" if meta["kind"] in ("ints", "names") else None)
        parser.add_argument(flag(f.name, meta), **{k: v for k, v in kw.items() if v is not None or k == "default"})


def config_from_args(cls: type, args: argparse.Namespace, **values: Any) -> Any:
    """``cls`` from the parsed flags of its CLI fields, plus ``values`` for the rest."""
    given = {f.name: getattr(args, f.name) for f, meta in options(cls) if meta["cli"] and hasattr(args, f.name)}
    return cls(**{**given, **values})


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress lines (the one helper, convscope/_progress.py, writes them to stderr)."""
    parser.add_argument("--quiet", action="store_true", help="no progress on standard error (a bar on a terminal, "
                                                             "a line per stage otherwise)")


THREADS_HELP = ("torch threads (default: the CPUs this process may use less those other programs keep busy, counted "
                "at the start; OMP_NUM_THREADS, if set, is followed)")


def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` for a command that runs a model over data; without it, the command runs on the CPUs free at
    its start. The CLI applies the count around the whole command (``cpu_threads`` in cli/__init__.py, through
    convscope.training.threads, as training, serve and refine do)."""
    from ._types import threads

    parser.add_argument("--threads", type=threads(), default=None, metavar="N", help=THREADS_HELP)
    parser.set_defaults(cpu_threads=True)
