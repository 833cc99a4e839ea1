"""SigV4 signing of STOW-RS requests as a requests ``AuthBase``: called again, with fresh credentials and a
fresh timestamp, for every attempt."""

from __future__ import annotations

from collections.abc import Callable

from requests import PreparedRequest
from requests.auth import AuthBase

from airflow_hi_stow.core import sigv4
from airflow_hi_stow.transport.bodies import AwsChunkedBody, Body

_SIGNED_REQUEST_HEADERS = ("Accept", "Content-Type")


class SigV4StowAuth(AuthBase):
    """Signs a request whose body is a :class:`~airflow_hi_stow.transport.bodies.Body`, in one of the payload modes.

    Signed: ``host``, ``x-amz-date``, Accept, Content-Type, the payload headers and the session token.
    ``credentials`` is called once per request (e.g. ``RefreshableCredentials.get_frozen_credentials``), so a
    long run keeps working across the expiry of assumed-role sessions.
    """

    def __init__(
        self,
        credentials: Callable[[], sigv4.Credentials],
        region: str,
        payload_signing: sigv4.PayloadSigning | str = sigv4.PayloadSigning.STREAMING,
        *,
        service: str = sigv4.SERVICE,
        chunk_size: int = sigv4.DEFAULT_CHUNK_SIZE,
    ) -> None:
        self.credentials = credentials
        self.region = region
        self.payload_signing = sigv4.PayloadSigning(payload_signing)
        self.service = service
        self.chunk_size = chunk_size

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        body = request.body
        if not isinstance(body, Body):
            raise TypeError("SigV4StowAuth signs bodies built by airflow_hi_stow.transport.bodies")
        headers = {name: str(request.headers[name]) for name in _SIGNED_REQUEST_HEADERS if name in request.headers}
        body_hash = body.sha256 if self.payload_signing is sigv4.PayloadSigning.SHA256 else None
        headers.update(sigv4.payload_headers(self.payload_signing, len(body), body_hash))
        signature = sigv4.sign(
            self.credentials(),
            self.region,
            request.method or "POST",
            request.url or "",
            headers,
            self.service,
        )
        request.headers.update(signature.headers)
        if self.payload_signing is sigv4.PayloadSigning.AWS_CHUNKED:
            # requests recomputes Content-Length from len(body) after the auth step
            request.body = AwsChunkedBody(body, signature, self.chunk_size)
        return request
