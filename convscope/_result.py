"""Result objects: their JSON form (``to_dict()`` gives plain lists, numbers, strings and None) and their display
(:class:`RichDisplay`: readable text in a terminal, HTML tables and inline pictures in Jupyter)."""

from __future__ import annotations

import base64
import dataclasses
import re
import html
import json
import math
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """``value`` with tuples, NumPy arrays and scalars, tensors and nested dataclasses made JSON-ready;
    non-finite floats become None (JSON has no NaN)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # NumPy arrays/scalars, torch tensors
        return plain(value.tolist())
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


class ResultMixin:
    """Gives a dataclass ``to_dict()`` (every field shown in its repr) and ``to_json()``."""

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


# --- rich display ------------------------------------------------------------------------------------------------
# One mechanism for every result object: a class says WHAT it shows (``_display()``: a title, a few lines, tables;
# ``_pictures()``: PNG bytes drawn by convscope.viz) and this mixin turns that into the terminal text (``repr``)
# and Jupyter's MIME bundle (HTML with the pictures inline as base64, no file written).

TEXT_ROWS = 20    # rows of a table shown in a terminal before "... N more"
HTML_ROWS = 60    # rows of a table shown in a notebook
CAPTION_STYLE = "caption-side: top; text-align: left; white-space: nowrap; font-style: italic"


@dataclasses.dataclass
class Table:
    """Rows of already-formatted cells under a header (cells are str; the caller decides the number format)."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclasses.dataclass
class Display:
    """What a result shows: a title, short lines (key facts), tables. Pictures come separately
    (:meth:`RichDisplay._pictures`) because only a notebook draws them."""

    title: str
    lines: list[str] = dataclasses.field(default_factory=list)
    tables: list[Table] = dataclasses.field(default_factory=list)


# a cell that reads as a number: 0.91, -3, 1,234, 1e-05, 12.5%, 3.2x, 0.3 s, or a dash / n/a for none
_NUMBER = re.compile(r"\s*(?:[-+]?(?:[\d,]*\.?\d+(?:e[-+]?\d+)?|nan|inf)\s*(?:%|x|×|s|ms)?|—|-|n/a|)\s*",
                     re.IGNORECASE)


def text_table(table: Table, max_rows: int = TEXT_ROWS) -> str:
    """The table as aligned monospace text, at most ``max_rows`` rows (the rest counted)."""
    rows = [[str(c) for c in r] for r in table.rows[:max_rows]]
    widths = [max([len(h)] + [len(r[i]) for r in rows if i < len(r)]) for i, h in enumerate(table.header)]
    # numbers right-aligned (digits line up), words left-aligned; the first column always left (the row's name)
    right = [i > 0 and all(_NUMBER.fullmatch(r[i]) for r in rows if i < len(r)) for i in range(len(widths))]
    fmt = lambda cells: "  ".join(c.rjust(w) if right[i] else c.ljust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    out = ([table.caption] if table.caption else []) + [fmt(table.header).rstrip()]
    out += [fmt(r).rstrip() for r in rows]
    if len(table.rows) > max_rows:
        out.append(f"... {len(table.rows) - max_rows} more rows")
    return "\n".join(out)


def html_table(table: Table, max_rows: int = HTML_ROWS) -> str:
    """The table as escaped HTML, at most ``max_rows`` rows (the rest counted in a last row)."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in table.rows[:max_rows])
    if len(table.rows) > max_rows:
        body += f'<tr><td colspan="{len(table.header)}">... {len(table.rows) - max_rows} more rows</td></tr>'
    cap = f'<caption style="{CAPTION_STYLE}">{esc(table.caption)}</caption>' if table.caption else ""
    return f'<table class="convscope">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def png_img(png: bytes, caption: str = "") -> str:
    """An ``<img>`` holding the PNG inline (base64 data URI), with its caption; no bytes: the caption alone (a
    picture that could not be drawn says why)."""
    if not png:
        return f"<p><em>{html.escape(caption)}</em></p>"
    src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure style="margin:0.3em 0"><img src="{src}" style="max-width:100%"/>{cap}</figure>'


class RichDisplay:
    """Displays a result in a terminal (``repr``: title, lines, tables cut to a few rows) and in Jupyter
    (``_repr_mimebundle_``: the same as HTML, plus the pictures inline). Subclasses implement ``_display()`` and,
    where there is something to draw, ``_pictures()``. A dataclass using it is declared ``repr=False`` so that its
    generated repr (every array, every field) does not replace this one."""

    def _display(self) -> Display:
        raise NotImplementedError

    def _pictures(self) -> list[tuple[str, bytes]]:
        """(caption, PNG bytes) of each picture; drawn only when a notebook asks for the rich display."""
        return []

    def __repr__(self) -> str:
        d = self._display()
        return "\n".join([d.title, *(f"  {line}" for line in d.lines), *(text_table(t) for t in d.tables)])

    __str__ = __repr__

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:   # IPython's terminal: the same text
        p.text(repr(self))

    def _repr_html_(self) -> str:
        return self._html(self._display(), self._pictures())

    @staticmethod
    def _html(d: Display, pictures: list[tuple[str, bytes]]) -> str:
        parts = [f"<h4>{html.escape(d.title)}</h4>"]
        if d.lines:
            parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in d.lines) + "</ul>")
        parts += [html_table(t) for t in d.tables]
        parts += [png_img(png, caption) for caption, png in pictures]
        return '<div class="convscope-result">' + "".join(parts) + "</div>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """text/plain and text/html; a result that is one picture alone also gives it as image/png."""
        d, pictures = self._display(), self._pictures()
        bundle = {"text/plain": repr(self), "text/html": self._html(d, pictures)}
        if len(pictures) == 1 and not d.tables:
            bundle["image/png"] = base64.b64encode(pictures[0][1]).decode("ascii")
        return bundle
