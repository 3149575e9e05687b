"""A tiny local HTTP proxy that forwards to the emulator and mangles its answers, for the
server-answer half of the hostile corpus: what a captive portal, a wrong base URL, a cut
connection or a broken middlebox sends back instead of Campaign Monitor's API."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import requests

#: mode → (status, headers, body) from the real (status, content type, body).
Mangle = Callable[[int, str, bytes], tuple[int, dict[str, str], bytes]]

HTML = b"<!doctype html><html><body><h1>Welcome to Hotel WiFi</h1>Please log in.</body></html>"


def _html(status: int) -> Mangle:
    return lambda s, t, b: (status, {"Content-Type": "text/html; charset=utf-8"}, HTML)


def _json(body: bytes) -> Mangle:
    return lambda s, t, b: (200, {"Content-Type": "application/json"}, body)


def _truncated(s: int, t: str, b: bytes) -> tuple[int, dict[str, str], bytes]:
    return s, {"Content-Type": t}, b[: max(1, len(b) // 2)]


def _long_length(s: int, t: str, b: bytes) -> tuple[int, dict[str, str], bytes]:
    return s, {"Content-Type": t, "Content-Length": str(len(b) + 500)}, b


def _bad_gzip(s: int, t: str, b: bytes) -> tuple[int, dict[str, str], bytes]:
    return s, {"Content-Type": t, "Content-Encoding": "gzip"}, b"definitely not gzip" + b


#: name → (mangle, words the message must hold)
MANGLES: dict[str, tuple[Mangle, tuple[str, ...]]] = {
    "html-200": (_html(200), ("text/html", "CMTOOLKIT_API_URL", "not Campaign Monitor")),
    "json-object-for-list": (
        _json(b'{"surprise": true}'),
        ("unexpected shape", "CMTOOLKIT_API_URL"),
    ),
    "json-wrong-types": (_json(b'[{"ClientID": 5, "Name": []}]'), ("client_id", "pick one")),
    "json-null": (_json(b"null"), ("CMTOOLKIT_API_URL",)),
    "empty-200": (_json(b""), ("CMTOOLKIT_API_URL",)),
    "truncated-body": (_truncated, ("cut short",)),
    "content-length-too-long": (_long_length, ("retr",)),
    "bad-gzip": (_bad_gzip, ("retr",)),
    "html-500": (_html(500), ("500",)),
    "html-401": (_html(401), ("refused credential", "auth login")),
    "html-404": (_html(404), ("found nothing", "CMTOOLKIT_API_URL")),
}


class _Handler(BaseHTTPRequestHandler):
    upstream: str
    mangle: Mangle

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
        real = requests.request(
            self.command, self.upstream + self.path, data=body, headers=headers, timeout=30
        )
        status, out_headers, out = self.mangle(
            real.status_code, real.headers.get("Content-Type", ""), real.content
        )
        self.send_response(status)
        out_headers.setdefault("Content-Length", str(len(out)))
        for key, value in out_headers.items():
            self.send_header(key, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(out)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _forward


@contextmanager
def mangling_proxy(base_url: str, mangle: Mangle) -> Iterator[str]:
    """A proxy in front of ``base_url`` (the emulator's); yields the proxied base URL."""
    parts = urlsplit(base_url)
    handler = type(
        "Handler",
        (_Handler,),
        {"upstream": f"{parts.scheme}://{parts.netloc}", "mangle": staticmethod(mangle)},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{parts.path}"
    finally:
        server.shutdown()
        server.server_close()
