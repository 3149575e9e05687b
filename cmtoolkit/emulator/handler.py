"""The HTTP side of the emulator: an :class:`Answer` and the request handler that sends it.

The handler only frames bytes; what to answer comes from the emulator (:class:`Answering`).
Request lines are never logged: they may carry email addresses. Malformed HTTP (a request line
without a version, a ``Content-Length`` that is not a count of bytes we accept) gets a JSON 400
and the connection is closed, as a real front end would answer.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Protocol

import orjson

JSON = "application/json; charset=utf-8"
#: The largest request body accepted: an import batch of 1000 subscribers is a few MB.
MAX_BODY = 64 * 2**20


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] | None = None
    action: str | None = None  # "drop" | "truncate"
    delay: float = 0.0
    content_type: str = JSON
    after: Callable[[], None] | None = None  # runs (under the lock) once the answer is sent


def error_answer(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> Answer:
    """An API error with the ``{"Code", "Message"}`` body."""
    return Answer(status, orjson.dumps({"Code": code, "Message": message}), headers or {})


class Answering(Protocol):
    """What the handler needs from the emulator."""

    def answer(self, method: str, target: str, headers: Message, body: bytes) -> Answer: ...

    def after_answer(self, work: Callable[[], None]) -> None: ...

    def wait(self, seconds: float) -> None: ...


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cmtoolkit-emulator"
    sys_version = ""
    # Errors raised while parsing the request line are framed as HTTP/1.0 (with a status line
    # and headers); the stdlib's default, HTTP/0.9, writes a bare body.
    default_request_version = "HTTP/1.0"
    emulator: Answering
    _headers_buffer: list[bytes]  # BaseHTTPRequestHandler's, absent from its type stubs

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass  # request lines may carry emails; the emulator logs method and path itself

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if len(self.requestline.split()) != 3:  # "GET /path": HTTP/0.9, which we do not speak
            self.send_error(400, "the request line must end with an HTTP version")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A JSON error (``{"Code", "Message"}``) that never echoes the request line."""
        self.close_connection = True
        body = orjson.dumps({"Code": code, "Message": message or self.responses[code][0]})
        self.send_response(code)
        self.send_header("Content-Type", JSON)
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body_length(self) -> int | None:
        """The declared body length, or None (after answering 400) when it is malformed."""
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return 0
        text = values[0].strip()
        if len(set(values)) > 1 or not (text.isascii() and text.isdigit()):
            self.send_error(400, "Content-Length must be one non-negative whole number")
            return None
        if int(text) > MAX_BODY:
            self.send_error(400, f"Content-Length is over the {MAX_BODY} bytes accepted")
            return None
        return int(text)

    def _handle(self) -> None:
        length = self._body_length()
        if length is None:
            return
        body = self.rfile.read(length) if length else b""
        out = self.emulator.answer(self.command, self.path, self.headers, body)
        if out.delay:
            # Waiting, not computing: this connection's thread sleeps (no lock held, no CPU),
            # so other clients are served meanwhile, as over a real wide-area network.
            self.emulator.wait(out.delay)
        if out.action == "drop":
            self._close()
            return
        self.send_response(out.status)
        self.send_header("Content-Type", out.content_type)
        for k, v in (out.headers or {}).items():
            self.send_header(k, v)
        if out.action == "truncate":
            self.send_header("Content-Length", str(len(out.body) + 64))
            self.end_headers()
            self.wfile.write(out.body[: len(out.body) // 2])
            self.wfile.flush()
            self._close()
            return
        self.send_header("Content-Length", str(len(out.body)))
        if self.command != "HEAD":
            # One write for head and body: two small writes meet Nagle + delayed ACK (40 ms).
            self._headers_buffer.append(b"\r\n" + out.body)
            self.flush_headers()
        else:
            self.end_headers()
        if out.after is not None:
            self.wfile.flush()
            self.emulator.after_answer(out.after)

    def _close(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle
