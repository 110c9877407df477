"""argparse types that refuse impossible numbers at parse time: ``--k -3`` is a usage error naming the flag
(exit 2), not minutes of work on a nonsense value. The checks are convscope._check's, as for the configs."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .._check import SEED_MAX, integer, number as finite, seed as check_seed, threads as check_threads
from ..errors import ConfigError


def _parser(convert: Callable[[str], object], what: str, check: Callable[[object], object], name: str
            ) -> Callable[[str], object]:
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        try:
            return check(value)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix("value: ")) from None
    parse.__name__ = name
    return parse


def whole(text: str) -> int:
    """int() on ASCII text only: Python's int() also reads other scripts' digits (int("\u0661") is 1), which no
    one means to type as a flag's value. Named ``int`` for argparse's message ("invalid int value: ...")."""
    if not text.isascii():
        raise ValueError(text)
    return int(text)


whole.__name__ = "int"


def count(minimum: int = 1, maximum: int | None = None, why: str = "") -> Callable[[str], int]:
    """An int of at least ``minimum`` (and at most ``maximum``: a bound on the work a flag asks for, ``why``
    saying what it bounds)."""
    return _parser(whole, "a whole number", lambda v: integer(v, "value", minimum, maximum, fix=why), "count")


def seed(maximum: int = SEED_MAX) -> Callable[[str], int]:
    """A seed, through the one seed check (``maximum``: a consumer that takes fewer bits, e.g. Optuna's sampler)."""
    return _parser(whole, "a whole number", lambda v: check_seed(v, "value", maximum), "seed")


def number(minimum: float | None = None, positive: bool = False) -> Callable[[str], float]:
    """A finite float (no nan/inf), at least ``minimum`` or, with ``positive``, above 0."""
    lo = 0.0 if positive else minimum
    return _parser(float, "a number", lambda v: finite(v, "value", lo, lo_open=positive), "number")


def threads() -> Callable[[str], int]:
    """A torch thread count: at least 1, at most the CPUs this process may use (the one threads check)."""
    return _parser(whole, "a whole number", lambda v: check_threads(integer(v, "value", 1), "value"), "threads")
