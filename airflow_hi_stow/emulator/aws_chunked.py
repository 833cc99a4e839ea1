"""Decoding an aws-chunked body as it arrives, verifying every chunk signature (the S3 "Transferring Payload in
Multiple Chunks" protocol, as MinIO's server verifies it).

Each chunk is ``hex-size;chunk-signature=<64 hex> CRLF data CRLF``; the last has size 0. A chunk's data is hashed
as it streams through, so a chunk of any size needs no buffering; its signature is checked when its data ends. Data
is passed on before its chunk is verified: the caller keeps it in temporary files and discards them if a later
check fails.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator, Mapping

from airflow_hi_stow.core import sigv4
from airflow_hi_stow.emulator.errors import AwsError, invalid

MAX_CHUNK_HEADER = 4096
_CHUNK_HEADER = re.compile(rb"([0-9a-fA-F]{1,16})(?:;chunk-signature=([0-9a-f]{64}))?")


def is_aws_chunked(headers: Mapping[str, str]) -> bool:
    """Whether Content-Encoding lists aws-chunked (alone or with other codings)."""
    codings = headers.get("content-encoding", "")
    return "aws-chunked" in (coding.strip().lower() for coding in codings.split(","))


class AwsChunkedDecoder:
    """Feed it the body in any pieces; it yields the decoded data. With a seed, every chunk signature is verified
    (a mismatch raises AwsError 403); without one (no-auth), signatures are not required."""

    def __init__(self, seed: sigv4.Signature | None) -> None:
        self._seed = seed
        self._previous = seed.signature if seed else ""
        self._header = bytearray()
        self._remaining = 0
        self._signature: str | None = None
        self._digest = hashlib.sha256()
        self._state = "header"
        self._crlf = b""

    @property
    def done(self) -> bool:
        return self._state == "done"

    def feed(self, data: bytes) -> Iterator[memoryview]:
        view = memoryview(data)
        while view:
            if self._state == "header":
                view = self._read_header(view)
            elif self._state == "data":
                take = view[: self._remaining]
                self._digest.update(take)
                self._remaining -= len(take)
                view = view[len(take) :]
                if take:
                    yield take
                if self._remaining == 0:
                    self._state = "data-crlf"
            elif self._state in ("data-crlf", "final-crlf"):
                view = self._read_crlf(view)
            else:
                raise invalid("aws-chunked body: data after the final chunk")

    def finish(self) -> None:
        if not self.done:
            raise invalid("aws-chunked body ends before its final 0-size chunk")

    def _read_header(self, view: memoryview) -> memoryview:
        end = bytes(view[: MAX_CHUNK_HEADER + 2]).find(b"\n")
        if end < 0:
            self._header += view
            if len(self._header) > MAX_CHUNK_HEADER:
                raise invalid("aws-chunked body: chunk header line too long")
            return view[len(view) :]
        self._header += view[: end + 1]
        line = bytes(self._header)
        self._header.clear()
        if not line.endswith(b"\r\n"):
            raise invalid("aws-chunked body: a chunk header line must end with CRLF")
        match = _CHUNK_HEADER.fullmatch(line[:-2])
        if match is None:
            raise invalid("aws-chunked body: malformed chunk header (expected hex-size;chunk-signature=<64 hex>)")
        self._remaining = int(match[1], 16)
        self._signature = match[2].decode("ascii") if match[2] else None
        if self._seed is not None and self._signature is None:
            raise AwsError("InvalidSignatureException", "aws-chunked body: a chunk has no chunk-signature")
        self._digest = hashlib.sha256()
        if self._remaining == 0:
            self._verify_chunk()
            self._state = "final-crlf"
        else:
            self._state = "data"
        return view[end + 1 :]

    def _read_crlf(self, view: memoryview) -> memoryview:
        need = 2 - len(self._crlf)
        self._crlf += bytes(view[:need])
        if len(self._crlf) < 2:
            return view[len(view) :]
        if self._crlf != b"\r\n":
            raise invalid("aws-chunked body: chunk data is not followed by CRLF (size and data disagree)")
        self._crlf = b""
        if self._state == "final-crlf":
            self._state = "done"
        else:
            self._verify_chunk()
            self._state = "header"
        return view[need:]

    def _verify_chunk(self) -> None:
        if self._seed is None:
            return
        expected = self._seed.sign_string(
            sigv4.chunk_string_to_sign(self._seed.timestamp, self._seed.scope, self._previous, self._digest.hexdigest())
        )
        if not hmac.compare_digest(expected, self._signature or ""):
            raise AwsError("InvalidSignatureException", "aws-chunked body: a chunk signature does not match")
        self._previous = expected
