"""The one strict JSON parser of convscope: what it reads back (run files, request bodies) is JSON as RFC 8259
defines it. Python's ``json.loads`` also takes ``NaN``, ``Infinity`` and ``-Infinity``, which convscope never
writes (a non-finite number is written as ``null``) and which no JSON encoder can send back (a page asking for
such a value got a 500); and it recurses once per nesting level, so a small body nested 100,000 deep raised
RecursionError. Here both are a ValueError whose message says what is wrong."""

from __future__ import annotations

import json
from typing import Any


def _non_finite(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (a number must be finite; convscope writes a missing or non-finite "
                     "value as null)")


def loads_strict(data: str | bytes) -> Any:
    """``json.loads`` without NaN/Infinity and with deep nesting a ValueError (json.JSONDecodeError is one too)."""
    try:
        return json.loads(data, parse_constant=_non_finite)
    except RecursionError:
        raise ValueError("nested too deeply (more levels of [ ] or { } than Python's recursion limit; convscope's "
                         "files and requests nest a few levels)") from None
