"""SigV4 signing of STOW-RS requests as a requests ``AuthBase``: called again, with fresh credentials and a
fresh timestamp, for every attempt; and the refresh of credentials the server refused as expired."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from requests import PreparedRequest
from requests.auth import AuthBase

from airflow_hi_stow.core import sigv4
from airflow_hi_stow.transport.bodies import AwsChunkedBody, Body

_SIGNED_REQUEST_HEADERS = ("Accept", "Content-Type")
_ACCESS_KEY = re.compile(r"Credential=([^/,\s]+)/")


class SigV4StowAuth(AuthBase):
    """Signs a request whose body is a :class:`~airflow_hi_stow.transport.bodies.Body`, in one of the payload modes.

    Signed: ``host``, ``x-amz-date``, Accept, Content-Type, the payload headers and the session token.
    ``credentials`` is called once per request (e.g. ``RefreshableCredentials.get_frozen_credentials``), so a
    long run keeps working across the expiry of assumed-role sessions. ``refresh``, when given, gets new
    credentials at once (see :func:`refresh_now`): the client calls it through :meth:`refresh_after_refusal` when the
    server refuses a request's credentials as expired before their expiry time (a session replaced or revoked).
    """

    def __init__(
        self,
        credentials: Callable[[], sigv4.Credentials],
        region: str,
        payload_signing: sigv4.PayloadSigning | str = sigv4.PayloadSigning.STREAMING,
        *,
        service: str = sigv4.SERVICE,
        chunk_size: int = sigv4.DEFAULT_CHUNK_SIZE,
        refresh: Callable[[], None] | None = None,
    ) -> None:
        self.credentials = credentials
        self.region = region
        self.payload_signing = sigv4.PayloadSigning(payload_signing)
        self.service = service
        self.chunk_size = chunk_size
        self.refresh = refresh
        self._refreshing = threading.Lock()

    def refresh_after_refusal(self, request: PreparedRequest) -> bool:
        """After the server refused ``request``'s credentials as expired: True when the credentials now differ from
        those it was signed with, refreshing them unless another thread already did (one refresh for the requests
        refused together)."""
        used = (_signed_access_key(request), request.headers.get("X-Amz-Security-Token"))
        with self._refreshing:
            if _identity(self.credentials()) != used:
                return True
            if self.refresh is None:
                return False
            self.refresh()
            return _identity(self.credentials()) != used

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


def refresh_now(credentials: Any) -> None:
    """Refresh botocore ``RefreshableCredentials`` (assumed role, SSO, container) now, whatever their expiry time
    says. botocore refreshes them only as their expiry nears and offers no public call for this, so its own refresh
    step is called, under its lock; other credentials (static keys) cannot be refreshed and are left as they are."""
    refresh = getattr(credentials, "_protected_refresh", None)
    lock = getattr(credentials, "_refresh_lock", None)
    if refresh is None or lock is None:
        return
    with lock:
        refresh(is_mandatory=True)


def _identity(credentials: sigv4.Credentials) -> tuple[str, str | None]:
    return (credentials.access_key, credentials.token)


def _signed_access_key(request: PreparedRequest) -> str | None:
    found = _ACCESS_KEY.search(str(request.headers.get("Authorization", "")))
    return found[1] if found else None
