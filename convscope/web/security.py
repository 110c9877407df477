"""What keeps ``convscope serve`` safe by default.

- Host check on every request (DNS rebinding: a page on evil.example that resolves to 127.0.0.1 still sends
  ``Host: evil.example``), Origin / Sec-Fetch-Site check on every state-changing request (cross-site POST).
- Security headers on every response: a Content-Security-Policy that allows only the server's own scripts
  and styles (images also as ``data:``), no framing, no sniffing, no referrer.
- File paths: only files inside a run directory, after refusing encoded and double-encoded traversal,
  absolute paths and symlinks that lead outside.
- Request bodies capped (413) while reading; images refused before decoding when their header announces
  more pixels than allowed (decompression bombs).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote

from PIL import Image
from starlette.requests import ClientDisconnect

from ..data.image import ImageFormatError, ImageTooLarge, read_image
from ..errors import DataError

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
MAX_BODY_BYTES = 2 * 1024 * 1024       # an upload or a canvas PNG: 2 MiB is plenty
MAX_IMAGE_PIXELS = 4096 * 4096         # decoded size limit, checked from the header before decoding
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


class WebError(Exception):
    """An HTTP error with a clear message, turned into ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def allowed_hosts(host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """``Host`` header values accepted: the loopback names and the bound host (unless a wildcard), with port."""
    names = set(LOOPBACK)
    if host not in ("0.0.0.0", "::", ""):
        names.add(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    names.update(extra)
    return frozenset(f"{n}:{port}" for n in names) | (frozenset(names) if port == 80 else frozenset())


async def _send_json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """Pure ASGI middleware: Host and Origin checks before the app runs, security headers on every response."""

    def __init__(self, app, hosts: frozenset[str]) -> None:
        self.app = app
        self.hosts = hosts
        self.origins = frozenset(f"http://{h}" for h in hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if host.lower() not in self.hosts:
            return await _send_json(send, 403, f"Host {host!r} is not served here (allowed: "
                                               f"{', '.join(sorted(self.hosts))}); DNS-rebinding protection")
        origin = headers.get("origin")
        if scope["method"] not in SAFE_METHODS:
            if origin is not None and origin.lower() not in self.origins:
                return await _send_json(send, 403, f"Origin {origin!r} may not send {scope['method']} requests "
                                                   "here (cross-site request refused)")
            if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return await _send_json(send, 403, "cross-site request refused (Sec-Fetch-Site)")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in present]
            await send(message)

        return await self.app(scope, receive, send_with_headers)


async def read_capped(request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, or 413 as soon as it passes ``limit`` (announced or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise WebError(413, f"request body of {int(declared):,} bytes exceeds the limit of {limit:,} bytes")
        except ValueError:
            raise WebError(400, f"Content-Length {declared!r} is not a number") from None
    chunks, total = [], 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise WebError(413, f"request body exceeds the limit of {limit:,} bytes")
            chunks.append(chunk)
    except ClientDisconnect:   # the client went away mid-upload: nobody to answer, nothing to log as a crash
        raise WebError(400, "the client disconnected before the request body was complete") from None
    return b"".join(chunks)


def decode_image(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """PNG or JPEG bytes (the formats every other path reads) -> a decoded PIL image, by the one reader
    (:func:`convscope.data.image.read_image`: the size announced by the header checked before decoding); its
    refusals as HTTP statuses."""
    if not data:
        raise WebError(400, "empty body: send an image (PNG or JPEG) as the request body")
    try:
        return read_image(data, max_pixels, name="upload")
    except ImageTooLarge:
        raise WebError(413, f"image refused: it announces more than the limit of {max_pixels:,} pixels "
                            "(decompression bomb protection)") from None
    except ImageFormatError as e:
        raise WebError(415, f"{e}; send PNG or JPEG") from None
    except DataError as e:
        raise WebError(400, str(e)) from None


def safe_child(root: Path, rel: str) -> Path:
    """``root / rel`` if it names an existing regular file inside ``root`` (after resolving symlinks).

    Refused: empty, absolute, backslashes, NUL, ``..`` or ``.`` segments, hidden files, any ``%`` left after
    the URL decoding (double encoding), and anything whose real path leaves ``root``."""
    bad = WebError(404, f"no such file: {rel!r}")
    if not rel or "\x00" in rel or "\\" in rel or "%" in rel or rel.startswith("/") or ":" in rel:
        raise bad
    parts = rel.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts) or unquote(rel) != rel:
        raise bad
    root_real = root.resolve()
    candidate = (root / rel)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        raise bad from None
    if not real.is_relative_to(root_real) or not real.is_file():
        raise bad
    # a symlink anywhere on the way (even one that stays inside) is not followed: runs hold no links
    p = candidate
    while p != root:
        if p.is_symlink():
            raise bad
        p = p.parent
    return real
