"""AWS Signature Version 4 for STOW-RS requests, in the three payload modes a HealthImaging client can use.

botocore's ``SigV4Auth`` builds the canonical request and computes the seed signature. botocore has no signed
aws-chunked encoding, so the chunk-signature chain ("Transferring Payload in Multiple Chunks", AWS S3 API
reference) is written here, on top of botocore's key derivation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Protocol

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest

from airflow_hi_stow.core.healthimaging import SERVICE

ALGORITHM = "AWS4-HMAC-SHA256"
CHUNK_ALGORITHM = "AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
DEFAULT_CHUNK_SIZE = 64 * 1024
MIN_CHUNK_SIZE = 8 * 1024
"""AWS: every chunk but the last must be at least 8 KB."""

_SIGNATURE = re.compile(r"Signature=([0-9a-f]{64})")
_CHUNK_SIGNATURE_FIELD = ";chunk-signature="


class Credentials(Protocol):
    """What botocore's frozen credentials provide (``ReadOnlyCredentials``)."""

    @property
    def access_key(self) -> str: ...
    @property
    def secret_key(self) -> str: ...
    @property
    def token(self) -> str | None: ...


class PayloadSigning(StrEnum):
    """How the body is covered by the signature (the connection extra ``payload_signing``)."""

    STREAMING = "streaming"
    """HealthImaging's documented form: the STREAMING literal as payload hash, the raw body unframed."""
    AWS_CHUNKED = "aws-chunked"
    """The full streaming protocol: aws-chunked framing with a signature per chunk."""
    SHA256 = "sha256"
    """The hex SHA-256 of the whole body (computed in a first pass over the files)."""


def payload_headers(mode: PayloadSigning, body_length: int, body_sha256: str | None = None) -> dict[str, str]:
    """The headers that declare the payload mode; they are set before signing so that they are signed."""
    if mode is PayloadSigning.SHA256:
        if body_sha256 is None:
            raise ValueError("the sha256 payload mode needs the body's hash")
        return {"X-Amz-Content-SHA256": body_sha256}
    headers = {"X-Amz-Content-SHA256": STREAMING_PAYLOAD, "X-Amz-Decoded-Content-Length": str(body_length)}
    if mode is PayloadSigning.AWS_CHUNKED:
        headers["Content-Encoding"] = "aws-chunked"
    return headers


@dataclass(frozen=True)
class Signature:
    """A signed request's headers and what is needed to continue the signature chain over its chunks."""

    headers: dict[str, str]
    """Every header that was signed, plus Authorization, X-Amz-Date and X-Amz-Security-Token."""
    signature: str
    timestamp: str
    scope: str
    sign_string: Callable[[str], str]
    """HMAC-SHA256 of a string with this request's signing key, as hex."""


def sign(
    credentials: Credentials,
    region: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    service: str = SERVICE,
) -> Signature:
    """Sign a request with botocore, covering ``host``, ``x-amz-date`` and exactly the given headers.

    The payload hash is whatever ``headers`` declares in X-Amz-Content-SHA256 (see :func:`payload_headers`).
    The time comes from ``botocore.auth.get_current_datetime``, so tests can freeze it there.
    """
    request = AWSRequest(method=method, url=url, headers=dict(headers))
    auth = SigV4Auth(credentials, service, region)
    auth.add_auth(request)
    match = _SIGNATURE.search(request.headers["Authorization"])
    if match is None:  # botocore always writes it; guard against a future format change
        raise RuntimeError("botocore did not produce a SigV4 signature")
    return Signature(
        headers={name: str(value) for name, value in request.headers.items()},
        signature=match.group(1),
        timestamp=request.context["timestamp"],
        scope=auth.credential_scope(request),
        sign_string=partial(auth.signature, request=request),
    )


def recompute(
    credentials: Credentials,
    region: str,
    method: str,
    url: str,
    signed_headers: Mapping[str, str],
    timestamp: str,
    service: str = SERVICE,
    *,
    payload_sha256: str | None = None,
) -> Signature:
    """Recompute the signature of a received request from its signed headers (for a verifying server).

    The payload hash is the signed X-Amz-Content-SHA256 header when there is one, else ``payload_sha256`` (the
    hash of the body as received, or the unsigned header's value), else the hash of an empty body.
    """
    request = AWSRequest(method=method, url=url, headers=dict(signed_headers))
    request.context["timestamp"] = timestamp
    auth = _ReceivedPayloadAuth(credentials, service, region, payload_sha256)
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    return Signature(
        headers=dict(signed_headers),
        signature=signature,
        timestamp=timestamp,
        scope=auth.credential_scope(request),
        sign_string=partial(auth.signature, request=request),
    )


class _ReceivedPayloadAuth(SigV4Auth):
    """botocore's signer with the payload hash given, for a server that hashed the body as it arrived."""

    def __init__(self, credentials: Credentials, service: str, region: str, payload_sha256: str | None) -> None:
        super().__init__(credentials, service, region)
        self._payload_sha256 = payload_sha256

    def payload(self, request: AWSRequest) -> str:
        return self._payload_sha256 or super().payload(request)


@dataclass(frozen=True)
class Authorization:
    """The fields of an ``Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`` header."""

    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/"
    r"aws4_request\s*,\s*SignedHeaders=(?P<headers>[a-z0-9;\-]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)


def parse_authorization(value: str) -> Authorization:
    """Parse a SigV4 Authorization header; raises ValueError when it is malformed."""
    match = _AUTHORIZATION.match(value.strip())
    if match is None:
        raise ValueError("malformed AWS4-HMAC-SHA256 Authorization header")
    return Authorization(
        access_key=match["key"],
        date=match["date"],
        region=match["region"],
        service=match["service"],
        signed_headers=tuple(match["headers"].split(";")),
        signature=match["signature"],
    )


def parse_timestamp(value: str) -> datetime:
    """Parse an X-Amz-Date value (``20130524T000000Z``); raises ValueError when malformed."""
    return datetime.strptime(value, SIGV4_TIMESTAMP)


def chunk_string_to_sign(timestamp: str, scope: str, previous_signature: str, chunk_sha256: str) -> str:
    """The string to sign for one chunk, chained to the previous chunk's (or the seed) signature."""
    return "\n".join((CHUNK_ALGORITHM, timestamp, scope, previous_signature, EMPTY_SHA256, chunk_sha256))


class ChunkSigner:
    """Signs successive chunks, each signature chained from the one before, starting at the seed signature."""

    def __init__(self, seed: Signature) -> None:
        self._seed = seed
        self.previous = seed.signature

    def sign(self, chunk: bytes | bytearray | memoryview) -> str:
        string_to_sign = chunk_string_to_sign(
            self._seed.timestamp, self._seed.scope, self.previous, hashlib.sha256(chunk).hexdigest()
        )
        self.previous = self._seed.sign_string(string_to_sign)
        return self.previous


def frame_chunk(data: bytes | bytearray | memoryview, signature: str) -> bytes:
    """One aws-chunked chunk: ``hex-size;chunk-signature=sig CRLF data CRLF``."""
    return b"".join((f"{len(data):x}{_CHUNK_SIGNATURE_FIELD}{signature}\r\n".encode("ascii"), data, b"\r\n"))


def aws_chunked_length(payload_length: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """The encoded length of a payload sent in chunks of ``chunk_size`` plus the final empty chunk."""

    def framed(size: int) -> int:
        return len(f"{size:x}") + len(_CHUNK_SIGNATURE_FIELD) + 64 + 2 + size + 2

    full, rest = divmod(payload_length, chunk_size)
    return full * framed(chunk_size) + (framed(rest) if rest else 0) + framed(0)


def aws_chunks(blocks: Iterable[bytes], signer: ChunkSigner, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """Re-cut a stream of blocks into signed, framed chunks of ``chunk_size``, ending with the empty chunk."""
    if chunk_size < MIN_CHUNK_SIZE:
        raise ValueError(f"aws-chunked chunks must be at least {MIN_CHUNK_SIZE} bytes")
    pending = bytearray()
    for block in blocks:
        pending += block
        if len(pending) < chunk_size:
            continue
        whole = len(pending) - len(pending) % chunk_size
        with memoryview(pending) as view:
            for start in range(0, whole, chunk_size):
                with view[start : start + chunk_size] as chunk:
                    framed = frame_chunk(chunk, signer.sign(chunk))
                yield framed
        del pending[:whole]
    if pending:
        yield frame_chunk(pending, signer.sign(pending))
    yield frame_chunk(b"", signer.sign(b""))
