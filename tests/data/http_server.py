"""A real HTTP server on 127.0.0.1 for download tests: serves bytes, and can cut a response short."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serve ``routes[path] = bytes``; paths listed in ``cut`` send their full Content-Length but only
    half the body, then close the connection (a connection dropped mid-file); paths listed in ``endless`` send no
    Content-Length and repeat the body until the client hangs up (a hostile or broken mirror)."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.endless: set[str] = set()
        self.sent: dict[str, int] = {}     # bytes sent per path (endless ones: until the client hung up)
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits.append(self.path)
                body = outer.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                if self.path in outer.endless:
                    self.end_headers()
                    outer.sent[self.path] = 0
                    try:
                        while True:
                            self.wfile.write(body)
                            outer.sent[self.path] += len(body)
                    except OSError:          # the client hung up: what a capped download must do
                        self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in outer.cut:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                else:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def dead_url() -> str:
    """A 127.0.0.1 URL on a port where nothing listens (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"
