"""A real HTTP server on loopback that records every request and answers from a script: for the client's
fault paths (re-sends, throttling, dropped connections) that a conforming server never produces on demand."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def whole(self) -> bool:
        """Whether the whole body arrived (a request the client abandoned mid-body has not)."""
        return "Content-Length" not in self.headers or len(self.body) == int(self.headers["Content-Length"])


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict[str, Any] | list[Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None
    """Close the connection, without answering, after reading this many body bytes."""
    cut_after: int | None = None
    """Answer with the whole body's Content-Length, send only this many bytes of it, then close the connection."""


Script = Callable[[int], Reply]
"""The reply to the request with this 0-based number."""
Answer = Callable[[Recorded], Reply]
"""The reply to a request, given the whole request."""


@dataclass
class ScriptedServer:
    url: str
    requests: list[Recorded]


def _read_body(handler: BaseHTTPRequestHandler, limit: int | None) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        data = bytearray()
        while size := int(handler.rfile.readline().split(b";")[0], 16):
            data += handler.rfile.read(size)
            handler.rfile.readline()
        handler.rfile.readline()
        return bytes(data)
    length = int(handler.headers.get("Content-Length", "0"))
    return handler.rfile.read(length if limit is None else min(limit, length))


@contextmanager
def scripted_server(script: Script) -> Iterator[ScriptedServer]:
    """Answers the n-th request with ``script(n)`` (chosen before the body is read, so it may drop it)."""
    with _server(script, None) as server:
        yield server


@contextmanager
def replying_server(answer: Answer) -> Iterator[ScriptedServer]:
    """Answers each request with ``answer(request)``, once its whole body is read."""
    with _server(None, answer) as server:
        yield server


@contextmanager
def _server(script: Script | None, answer: Answer | None) -> Iterator[ScriptedServer]:
    recorded: list[Recorded] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            with lock:
                reply = script(len(recorded)) if script is not None else None
                request = Recorded(self.command, self.path, dict(self.headers), b"")
                recorded.append(request)
            request.body = _read_body(self, reply.drop_after if reply is not None else None)
            if reply is None:
                assert answer is not None
                reply = answer(request)
            if reply.drop_after is not None:
                self.close_connection = True
                return
            payload = (
                reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode() if reply.body else b""
            )
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload if reply.cut_after is None else payload[: reply.cut_after])
            if reply.cut_after is not None:
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield ScriptedServer(f"http://127.0.0.1:{server.server_address[1]}", recorded)
    finally:
        server.shutdown()
        server.server_close()
