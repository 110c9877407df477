"""Errors of the HTML routes are pages with the message and a way back (navigation, links to the run's pages);
the JSON API and the file routes keep answering ``{"error": ...}`` (scripts and <img> read them)."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx
import pytest

from .test_browser import shot


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.nav, self.links, self._in_nav = [], [], False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "nav":
            self._in_nav = True
        if tag == "a":
            (self.nav if self._in_nav else self.links).append(a.get("href"))

    def handle_endtag(self, tag):
        if tag == "nav":
            self._in_nav = False


CASES = [  # path, status, words of the message, the run whose pages the page links to (None: unknown)
    ("/run/nope/draw", 404, "no run 'nope'", None),
    ("/run/nope/training", 404, "no run 'nope'", None),
    ("/run/nope/unit/conv1/0", 404, "no run 'nope'", None),
    ("/run/digits8/unit/nolayer/0", 400, "layer 'nolayer': not a feature-map layer", "digits8"),
    ("/run/digits8/unit/fc/0", 400, "not a feature-map layer", "digits8"),
    ("/run/digits8/unit/conv1/99", 400, "channels 0..7", "digits8"),
    ("/run/digits8/unit/conv1/-1", 400, "channels 0..7", "digits8"),
    ("/run/digits8/unit/conv1/x", 422, "ch", "digits8"),
    ("/run/digits8/nothing", 404, "not found: /run/digits8/nothing", "digits8"),
    ("/no/such/page", 404, "not found: /no/such/page", None),
    ("/training/extra", 404, "not found", None),
]


@pytest.mark.parametrize("path,status,text,rid", CASES, ids=[c[0] for c in CASES])
def test_html_route_errors_are_pages_with_navigation(server, path, status, text, rid):
    r = httpx.get(server.base + path, headers={"accept": "text/html"})
    assert r.status_code == status
    assert r.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in r.headers and "Traceback" not in r.text
    assert r.text.startswith("<!doctype html>") and f'data-status="{status}"' in r.text
    from html import unescape

    assert text in unescape(r.text)
    p = _Links()
    p.feed(r.text)
    assert "/" in p.nav and "/matrix" in p.nav                     # the site navigation is there
    assert "/" in p.links                                           # and a way back in the page itself
    if rid:
        assert f"/run/{rid}/draw" in p.nav and f"/run/{rid}/draw" in p.links
    else:
        assert not [h for h in p.nav + p.links if h.startswith("/run/nope")]


def test_method_not_allowed_on_a_page_is_a_page(server):
    r = httpx.post(server.base + "/training", headers={"origin": server.base})
    assert r.status_code == 405 and r.headers["content-type"].startswith("text/html")
    assert "method POST not allowed" in r.text


def test_api_and_file_errors_stay_json(server):
    for path, status in [("/api/run/nope/training", 404), ("/api/run/digits8/unit/conv1/99", 400),
                         ("/run/nope/confusion.png", 404), ("/run/digits8/file/none.png", 404),
                         ("/static/none.js", 404)]:
        r = httpx.get(server.base + path, headers={"accept": "text/html"})
        assert r.status_code == status and r.headers["content-type"] == "application/json", path
        assert r.json()["error"]


def test_error_page_in_the_browser(server, browser_page):
    page, log = browser_page
    page.goto(server.base + "/run/digits8/unit/conv1/99")
    assert "channels 0..7" in page.text_content(".card.error .message")
    shot(page, "serve-error.png")
    page.click(".card.error a >> text=digits8: draw")
    page.wait_for_selector("#pad")
    assert log["errors"] == [] or all("404" in m or "400" in m for m in log["errors"])
