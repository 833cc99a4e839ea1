"""AWS Signature Version 4 for STOW-RS requests, in the three payload modes a HealthImaging client can use.

botocore's ``SigV4Auth`` builds the canonical request and computes the seed signature. botocore has no signed
aws-chunked encoding, so the chunk-signature chain ("Transferring Payload in Multiple Chunks", AWS S3 API
reference) is written here, on top of botocore's key derivation.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import botocore.auth
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest

from airflow_hi_stow.core.healthimaging import SERVICE
from airflow_hi_stow.core.payload_signing import PayloadSigning as PayloadSigning

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


class _SilentSigV4Auth(SigV4Auth):
    """botocore's SigV4 signer without its DEBUG lines, which print the canonical request (session token
    included) and the signature: in the streaming modes a signature from a log would let its reader send other
    bodies for up to 15 minutes. The steps are ``SigV4Auth.add_auth``'s own."""

    def add_auth(self, request: AWSRequest) -> None:
        request.context["timestamp"] = botocore.auth.get_current_datetime().strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical_request = self.canonical_request(request)
        signature = self.signature(self.string_to_sign(request, canonical_request), request)
        self._inject_signature_to_request(request, signature)


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
    auth = _SilentSigV4Auth(credentials, service, region)
    auth.add_auth(request)
    match = _SIGNATURE.search(request.headers["Authorization"])
    if match is None:  # botocore always writes it; guard against a future format change
        raise RuntimeError("botocore did not produce a SigV4 signature")
    timestamp = request.context["timestamp"]
    return Signature(
        headers={name: str(value) for name, value in request.headers.items()},
        signature=match.group(1),
        timestamp=timestamp,
        scope=auth.credential_scope(request),
        sign_string=string_signer(credentials.secret_key, timestamp, region, service),
    )


def string_signer(secret_key: str, timestamp: str, region: str, service: str) -> Callable[[str], str]:
    """HMAC-SHA256 (hex) with a request's signing key, derived once (``SigV4Auth.signature`` derives it again for
    every string: four HMACs more per aws-chunked chunk)."""
    key = hmac.new(f"AWS4{secret_key}".encode(), timestamp[:8].encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return partial(_hex_hmac, key)


def _hex_hmac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


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
