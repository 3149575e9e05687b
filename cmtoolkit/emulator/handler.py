"""The HTTP side of the emulator: an :class:`Answer` and the request handler that sends it.

The handler only frames bytes; what to answer comes from the emulator (:class:`Answering`).
Request lines are never logged: they may carry email addresses.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Protocol

import orjson

JSON = "application/json; charset=utf-8"


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


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cmtoolkit-emulator"
    sys_version = ""
    emulator: Answering
    _headers_buffer: list[bytes]  # BaseHTTPRequestHandler's, absent from its type stubs

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass  # request lines may carry emails; the emulator logs method and path itself

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        out = self.emulator.answer(self.command, self.path, self.headers, body)
        if out.action == "drop":
            self._close()
            return
        if out.delay:
            time.sleep(out.delay)
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
