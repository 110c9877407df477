"""The page shell: head, navigation, and escaping helpers. No inline script or style (the CSP forbids them)."""

from __future__ import annotations

from html import escape


def e(value: object) -> str:
    """HTML-escaped text (attributes included)."""
    return escape(str(value), quote=True)


def page(title: str, body: str, *, nav: list[tuple[str, str]] = (), scripts: list[str] = (), css: str | None = None,
         body_attrs: str = "", csp: str | None = None) -> str:
    """A whole HTML document. ``css``: inline the style sheet text (static report) instead of linking it."""
    links = "".join(f'<a href="{e(href)}">{e(label)}</a>' for label, href in nav)
    style = f"<style>{css}</style>" if css is not None else '<link rel="stylesheet" href="/static/app.css">'
    meta_csp = f'<meta http-equiv="Content-Security-Policy" content="{e(csp)}">' if csp else ""
    js = "".join(f'<script src="/static/{e(s)}" defer></script>' for s in scripts)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta_csp}'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f'<title>{e(title)} · convscope</title>{style}{js}</head>'
            f'<body {body_attrs}><header><span class="brand">convscope</span><nav>{links}</nav></header>'
            f'<main>{body}</main></body></html>')


def table(header: list[str], rows: list[list[object]], cls: str = "") -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    thead = f"<thead><tr>{head}</tr></thead>" if any(header) else ""
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{e(cls)}">{thead}<tbody>{body}</tbody></table>'
