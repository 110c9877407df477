"""Generated blocks in the docs: ``<!-- TAG:NAME -->`` ... ``<!-- /TAG:NAME -->`` in README.md and docs/*.md,
rewritten from a benchmark's results so that every table the docs quote is the one a script measured.

One rewriter for every script that owns blocks (bench/lecture_tables.py: ``lecture``, bench/speed_tables.py:
``speed``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from convscope._atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def pattern(tag: str) -> re.Pattern:
    return re.compile(rf"(<!-- {tag}:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /{tag}:(?P=name) -->)", re.S)


def rewritten(text: str, tag: str, body: Callable[[str], str | None], known: list[str]) -> str:
    """``text`` with every ``tag`` block's body replaced by ``body(name)``; a block whose body is None (its
    numbers not measured yet) stays as it is; an unknown block name stops with the names that are known."""
    def one(m: re.Match) -> str:
        name = m.group("name")
        if name not in known:
            raise SystemExit(f"unknown {tag} block {name!r}; known: {', '.join(known)}")
        new = body(name)
        return m.group(0) if new is None else m.group(1) + new.rstrip("\n") + "\n" + m.group(4)

    return pattern(tag).sub(one, text)


def rewrite_pages(tag: str, body: Callable[[str], str | None], known: list[str],
                  pages: list[Path] = PAGES) -> list[Path]:
    """Rewrite the ``tag`` blocks of ``pages`` in place (atomically); the pages that changed."""
    changed = []
    for page in pages:
        text = page.read_text()
        new = rewritten(text, tag, body, known)
        if new != text:
            atomic_write_text(page, new)
            changed.append(page)
    return changed
