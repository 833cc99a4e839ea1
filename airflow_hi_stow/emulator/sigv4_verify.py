"""Verifying a received SigV4 request, as a server does: parsing its Authorization header and recomputing the
signature from the signed headers with botocore's canonical request. The client never needs this; the emulator's
authenticator (:mod:`.auth`) builds on it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest

from airflow_hi_stow.core.healthimaging import SERVICE
from airflow_hi_stow.core.sigv4 import Credentials, Signature, string_signer


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
        sign_string=string_signer(credentials.secret_key, timestamp, region, service),
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
