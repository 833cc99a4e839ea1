"""Exceptions of the STOW-RS client. Their messages name files and reasons, never credentials,
signatures or patient data."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from airflow_hi_stow.core.names import printable
from airflow_hi_stow.core.results import RetryCause

_SHOWN_SOURCES = 5
_MAX_REASON = 200
_SECRETS = (
    re.compile(r"(Signature=|Credential=)\S+"),
    re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{12,}\b"),
    re.compile(r"\b[0-9a-fA-F]{32,}\b"),
)


def describe_sources(sources: Sequence[str]) -> str:
    """``a.dcm, b.dcm (+3 more)``, control characters of the names escaped."""
    shown = ", ".join(printable(source) for source in sources[:_SHOWN_SOURCES])
    more = len(sources) - _SHOWN_SOURCES
    return f"{shown} (+{more} more)" if more > 0 else shown


def redact(text: str) -> str:
    """Strip what looks like a key id, a signature or a hash, and keep the text short."""
    for pattern in _SECRETS:
        text = pattern.sub("[redacted]", text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def _json_object(body: bytes) -> dict[str, object] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def error_type(body: bytes, header: str | None = None) -> str | None:
    """The AWS error type of an answer (``ExpiredTokenException``): the ``x-amzn-ErrorType`` header, else the
    body's ``__type`` or ``code``, without the namespace or the ``:url`` suffix AWS appends."""
    document = _json_object(body) if header is None else None
    value = header or (document or {}).get("__type") or (document or {}).get("code")
    return str(value).split("#")[-1].split(":")[0].strip() or None if value else None


def error_reason(body: bytes, error_type_header: str | None = None) -> str:
    """A short reason from an error body: the ``message`` of a JSON error, else the first line of text.

    AWS error messages may quote the canonical request; only the first line is kept, and redacted.
    """
    message = ""
    page = False
    document = _json_object(body)
    if document is not None:
        message = str(document.get("message") or document.get("Message") or "").strip()
        message = message.splitlines()[0] if message else ""
    elif body:
        message = body[:2000].decode("utf-8", "replace").strip().splitlines()[0] if body.strip() else ""
        if message.lstrip().startswith("<"):
            message, page = "", True  # an HTML or XML page says nothing useful in one line
    parts = [part for part in (error_type(body, error_type_header) or "", message) if part]
    if parts:
        return redact(": ".join(parts))
    return "no reason given (an HTML or XML page)" if page else "no reason given"


class StowError(Exception):
    """Base class of every error the client raises."""


class SourceError(StowError):
    """A source file could not be read while sending. Deliberately not an OSError, so that the HTTP stack does not
    take it for a broken connection."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class StowHTTPError(StowError):
    """The server refused the request. Carries the HTTP status, the request id and the files concerned."""

    def __init__(
        self,
        status_code: int,
        reason: str,
        sources: Sequence[str],
        request_id: str | None = None,
        hint: str = "",
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.sources = list(sources)
        self.request_id = request_id
        text = f"HTTP {status_code}: {reason}"
        if hint:
            text += f" ({hint})"
        text += f"; {len(self.sources)} file(s) not stored: {describe_sources(self.sources)}"
        if request_id:
            text += f"; request id {request_id}"
        super().__init__(text)


class StowBadRequest(StowHTTPError):
    """400: the server could not parse the request."""


class StowAuthError(StowHTTPError):
    """401/403: credentials, signature, region, clock or IAM permissions."""


class StowNotFound(StowHTTPError):
    """404: usually an unknown data store id or a wrong endpoint."""


class StowPayloadTooLarge(StowHTTPError):
    """413: the request body is larger than the server accepts."""


class StowUnsupportedMediaType(StowHTTPError):
    """415: the server does not accept this body form (single-part vs multipart)."""


class StowRetriesExhausted(StowError):
    """Every attempt was answered with a retryable status or lost its connection."""

    def __init__(
        self,
        attempts: int,
        last_problem: str,
        sources: Sequence[str],
        status_code: int | None = None,
        retries: Mapping[RetryCause, int] | None = None,
    ) -> None:
        self.attempts = attempts
        self.last_problem = last_problem
        self.status_code = status_code
        self.retries = dict(retries or {})
        """The re-sends before giving up, by cause."""
        self.sources = list(sources)
        super().__init__(
            f"gave up after {attempts} attempt(s), last: {last_problem}; "
            f"{len(self.sources)} file(s) not confirmed: {describe_sources(self.sources)}"
        )


class StowTLSError(StowError):
    """The TLS connection could not be set up (a certificate problem): not transient, so never retried."""

    def __init__(self, problem: str, host: str, sources: Sequence[str], hint: str = "") -> None:
        self.problem = problem
        self.host = host
        self.sources = list(sources)
        self.reason = f"TLS to {host}: {problem}"
        text = self.reason + (f" ({hint})" if hint else "")
        super().__init__(f"{text}; {len(self.sources)} file(s) not sent: {describe_sources(self.sources)}")


class StowProxyError(StowError):
    """The proxy refused to forward the request (e.g. it asks for authentication): not retried."""

    def __init__(self, problem: str, sources: Sequence[str]) -> None:
        self.reason = problem
        self.sources = list(sources)
        super().__init__(
            f"{problem} (set the user and password in the proxy URL of the connection's config_kwargs.proxies, or "
            f"HTTPS_PROXY); {len(self.sources)} file(s) not sent: {describe_sources(self.sources)}"
        )
