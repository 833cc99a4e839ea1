"""A strict STOW-RS sink on loopback for the benchmarks: it verifies every request as HealthImaging would (SigV4 with
the emulator's verifier: the headers, every aws-chunked chunk signature, the body's SHA-256 in the sha256 mode),
finds each instance's SOP Instance UID in its part, and answers a real Store Instances Response, but stores
nothing. It bounds what a client can reach here: what it costs per request and per instance is the floor of any
server that checks what it receives.

Blocking sockets, a thread per connection, TCP_NODELAY (the head and the body of an answer leave in one write, so
no answer waits on the client's delayed ACK), bodies read in pieces of up to 1 MiB: memory stays flat for a 1 GB
request.

    python bench/sink.py [--port 0] [--region us-east-1] [--access-key test] [--secret-key test]

prints the port once it listens.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import socket
import threading
from collections.abc import Iterator

from airflow_hi_stow.core.dicom_header import scan_header
from airflow_hi_stow.core.multipart import DICOM_JSON_MEDIA_TYPE, DICOM_MEDIA_TYPE, parse_media_type
from airflow_hi_stow.core.store_response import ReferencedInstance, build_store_response
from airflow_hi_stow.emulator.auth import Authenticator, EmulatorCredentials, PayloadCheck, SignedRequest
from airflow_hi_stow.emulator.aws_chunked import AwsChunkedDecoder, is_aws_chunked
from airflow_hi_stow.emulator.errors import AwsError, invalid

RECEIVE = 1 << 20
PART_HEAD = 64 * 1024
"""Bytes kept of each part to read its identifiers from."""
MAX_HEAD = 64 * 1024
SOP_CLASS, SOP_INSTANCE = 0x00080016, 0x00080018
_IDENTIFIERS = frozenset({SOP_CLASS, SOP_INSTANCE})
CANNOT_UNDERSTAND = 0xC000
_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 403: "Forbidden", 409: "Conflict", 415: "Unsupported"}
_request_ids = itertools.count(1)


class Connection:
    """Buffered reads from one client socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def _fill(self) -> None:
        data = self.sock.recv(RECEIVE)
        if not data:
            raise EOFError
        self.buffer += data

    def until(self, marker: bytes, limit: int = MAX_HEAD) -> bytes:
        """The bytes up to and including ``marker``."""
        while (at := self.buffer.find(marker)) < 0:
            if len(self.buffer) > limit:
                raise ValueError("header too long")
            self._fill()
        end = at + len(marker)
        line = bytes(self.buffer[:end])
        del self.buffer[:end]
        return line

    def take(self, count: int) -> Iterator[bytes]:
        """Exactly ``count`` bytes, in pieces."""
        while count:
            if self.buffer:
                piece = bytes(self.buffer[:count])
                del self.buffer[: len(piece)]
            else:
                piece = self.sock.recv(min(RECEIVE, count))
                if not piece:
                    raise EOFError
            count -= len(piece)
            yield piece

    def chunked(self) -> Iterator[bytes]:
        """A ``Transfer-Encoding: chunked`` body, decoded."""
        while True:
            size = int(self.until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                while self.until(b"\r\n") != b"\r\n":  # trailer fields
                    pass
                return
            yield from self.take(size)
            self.until(b"\r\n")


class Parts:
    """Splits a multipart/related body as it streams by, keeping the first bytes of each part."""

    def __init__(self, boundary: str) -> None:
        self.delimiter = b"\r\n--" + boundary.encode("latin-1")
        self.carry = b"\r\n"  # the body opens with --boundary, without the CRLF of later delimiters
        self.state = "data"
        self.current: bytearray | None = None
        self.size = 0
        self.parts: list[tuple[bytes, bool]] = []
        """Each part's first bytes, and whether they are the whole part."""

    def feed(self, data: bytes) -> None:
        window = self.carry + data if self.carry else data
        self.carry = b""
        position, end = 0, len(window)
        while position < end and self.state != "epilogue":
            if self.state == "data":
                at = window.find(self.delimiter, position)
                if at < 0:  # keep what could be the start of a delimiter for the next piece
                    stop = max(position, end - len(self.delimiter) + 1)
                    self._keep(window, position, stop)
                    self.carry = window[stop:]
                    return
                self._keep(window, position, at)
                if self.current is not None:
                    self.parts.append((bytes(self.current), self.size <= PART_HEAD))
                    self.current = None
                position, self.state = at + len(self.delimiter), "headers"
            elif window.startswith(b"--", position):
                self.state = "epilogue"
            else:
                at = window.find(b"\r\n\r\n", position)
                if at < 0 or end - position < 2:
                    if end - position > MAX_HEAD:
                        raise invalid("multipart part headers too long")
                    self.carry = window[position:]
                    return
                position, self.state = at + 4, "data"
                self.current, self.size = bytearray(), 0

    def _keep(self, window: bytes, start: int, stop: int) -> None:
        if self.current is None or stop <= start:
            return
        self.size += stop - start
        room = PART_HEAD - len(self.current)
        if room > 0:
            self.current += window[start : start + min(stop - start, room)]

    def finish(self) -> list[tuple[bytes, bool]]:
        if self.state != "epilogue":
            raise invalid("malformed multipart body: it ends before the closing delimiter")
        return self.parts


class SinglePart:
    def __init__(self) -> None:
        self.head = bytearray()
        self.size = 0

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        if len(self.head) < PART_HEAD:
            self.head += data[: PART_HEAD - len(self.head)]

    def finish(self) -> list[tuple[bytes, bool]]:
        return [(bytes(self.head), self.size <= PART_HEAD)]


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        key, text = name.strip().lower(), value.strip()
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    return method, target, headers


def answer(sock: socket.socket, status: int, body: bytes, media_type: str, *, close: bool = False) -> None:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {media_type}\r\n"
        f"Content-Length: {len(body)}\r\nx-amzn-RequestId: sink-{next(_request_ids)}\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    sock.sendall(head.encode("latin-1") + body)


def store_response(parts: list[tuple[bytes, bool]], base_url: str) -> tuple[int, bytes]:
    referenced, other = [], []
    for head, whole in parts:
        found = scan_header(head, _IDENTIFIERS, complete=whole)
        uid = (found or {}).get(SOP_INSTANCE, b"").decode("latin-1").strip("\0 ")
        sop_class = (found or {}).get(SOP_CLASS, b"").decode("latin-1").strip("\0 ")
        if uid:
            referenced.append(ReferencedInstance(uid, sop_class or None, f"{base_url}/instances/{uid}"))
        else:
            other.append(CANNOT_UNDERSTAND)
    module = build_store_response(retrieve_url=base_url, referenced=referenced, failed=[], other_failures=other)
    status = 200 if not other else 202 if referenced else 400
    return status, json.dumps(module).encode()


def handle(connection: Connection, authenticator: Authenticator) -> bool:
    """Serve one request; False when the connection must close."""
    try:
        head = connection.until(b"\r\n\r\n")
    except EOFError:
        return False
    method, target, headers = parse_head(head)
    path, _, query = target.partition("?")
    length = int(headers.get("content-length", "0"))
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    try:
        if method != "POST" or "/studies" not in path:
            raise AwsError("ResourceNotFoundException", "the sink only takes StoreDICOM")
        signed = authenticator.authenticate(method, path, query, headers)
        media_type, params = parse_media_type(headers.get("content-type", ""))
        if media_type == "multipart/related" and params.get("boundary"):
            receiver: Parts | SinglePart = Parts(params["boundary"])
        elif media_type == DICOM_MEDIA_TYPE:
            receiver = SinglePart()
        else:
            raise AwsError("UnsupportedMediaTypeException", "StoreDICOM takes application/dicom or multipart/related")
    except AwsError as error:
        for _ in connection.chunked() if chunked else connection.take(length):
            pass
        answer(connection.sock, error.status, json.dumps({"message": error.message}).encode(), "application/json")
        return True
    if "100-continue" in headers.get("expect", "").lower():
        connection.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    pieces = connection.chunked() if chunked else connection.take(length)
    try:
        receive_body(pieces, signed, is_aws_chunked(headers), receiver)
        parts = receiver.finish()
    except AwsError as error:
        for _ in pieces:
            pass
        answer(connection.sock, error.status, json.dumps({"message": error.message}).encode(), "application/json")
        return True
    status, body = store_response(parts, "http://sink" + path)
    answer(connection.sock, status, body, DICOM_JSON_MEDIA_TYPE)
    return True


def receive_body(
    pieces: Iterator[bytes], signed: SignedRequest | None, aws_chunked: bool, receiver: Parts | SinglePart
) -> None:
    decoder = AwsChunkedDecoder(signed.seed if signed else None) if aws_chunked else None
    check = signed.check if signed else PayloadCheck.NONE
    digest = hashlib.sha256() if check in (PayloadCheck.SHA256, PayloadCheck.DEFERRED) else None
    for piece in pieces:
        for data in decoder.feed(piece) if decoder else (piece,):
            if digest is not None:
                digest.update(data)
            receiver.feed(bytes(data))
    if decoder is not None:
        decoder.finish()
    if signed is not None and digest is not None:
        signed.verify_payload(digest.hexdigest())


def serve_connection(sock: socket.socket, authenticator: Authenticator) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection = Connection(sock)
    try:
        while handle(connection, authenticator):
            pass
    except (EOFError, ConnectionError, ValueError):
        pass
    finally:
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--access-key", default="test")
    parser.add_argument("--secret-key", default="test")
    args = parser.parse_args()
    authenticator = Authenticator(EmulatorCredentials(args.access_key, args.secret_key), args.region)
    listener = socket.create_server(("127.0.0.1", args.port), backlog=64)
    print(listener.getsockname()[1], flush=True)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve_connection, args=(sock, authenticator), daemon=True).start()


if __name__ == "__main__":
    main()
