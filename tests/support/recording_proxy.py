"""A loopback TCP relay in front of the emulator that keeps every byte clients sent through it, so that a test
knows each request signature that went over the wire (the ``Signature=`` of SigV4 Authorization headers and every
aws-chunked ``chunk-signature=``) and can look for them where they must never appear. Bytes pass unchanged."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

_SIGNATURE = re.compile(rb"(?:Signature=|chunk-signature=)([0-9a-f]{64})")


@dataclass
class RecordingProxy:
    url: str
    sent: list[bytearray] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def signatures(self) -> set[str]:
        """Every request and chunk signature clients sent."""
        with self.lock:
            return {match.decode() for stream in self.sent for match in _SIGNATURE.findall(bytes(stream))}

    def requests(self) -> int:
        with self.lock:
            return sum(bytes(stream).count(b"Authorization: AWS4-HMAC-SHA256") for stream in self.sent)


@contextmanager
def recording_proxy(target_host: str, target_port: int) -> Iterator[RecordingProxy]:
    listener = socket.create_server(("127.0.0.1", 0))
    proxy = RecordingProxy(f"http://127.0.0.1:{listener.getsockname()[1]}")
    stop = threading.Event()

    def pipe(source: socket.socket, target: socket.socket, record: bytearray | None) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                if record is not None:
                    with proxy.lock:
                        record += data
                target.sendall(data)
        with suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((target_host, target_port))
            record = bytearray()
            with proxy.lock:
                proxy.sent.append(record)
            threading.Thread(target=pipe, args=(client, upstream, record), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client, None), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        stop.set()
        listener.close()
        thread.join(5)
