"""SigV4 verification of received requests, on the signer of :mod:`airflow_hi_stow.core.sigv4` (botocore's
canonical request): the three payload modes a STOW-RS client uses, and the plain signing of botocore's
control-plane requests.

Checked, in order: the Authorization header's form, the access key, the session token, that ``host`` and
``x-amz-date`` are signed and every signed header is present, the date (scope date equal to ``x-amz-date``, within
±15 minutes of the emulator's clock, as AWS allows), region and service, then the signature. Error messages follow
AWS's and never contain a signature or a secret.

The accepted credentials can be rotated while the emulator runs (:meth:`Authenticator.rotate`, the admin endpoint
``POST /_emulator/credentials``), as an assumed-role session is replaced by the next: requests still carrying an
earlier key pair or session token are refused with 403 ``ExpiredTokenException``, which a client answers by
refreshing its credentials.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

from airflow_hi_stow.core import sigv4
from airflow_hi_stow.core.healthimaging import SERVICE
from airflow_hi_stow.emulator import sigv4_verify
from airflow_hi_stow.emulator.aws_chunked import is_aws_chunked
from airflow_hi_stow.emulator.errors import AwsError

CLOCK_SKEW = timedelta(minutes=15)
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access "
    "Key and signing method. Consult the service documentation for details."
)
_INVALID_TOKEN = "The security token included in the request is invalid."  # noqa: S105 - a message
_EXPIRED_TOKEN = "The security token included in the request is expired"  # noqa: S105 - AWS's message
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_PORT = re.compile(r":\d+$")
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class EmulatorCredentials:
    """The one key pair (and optional session token) the emulator accepts."""

    access_key: str
    secret_key: str
    token: str | None = None


class PayloadCheck(Enum):
    """What remains to be verified once the headers are: how the body is covered by the signature."""

    NONE = "none"
    """The STREAMING literal on an unframed body (HealthImaging's documented form), or UNSIGNED-PAYLOAD."""
    CHUNKS = "chunks"
    """aws-chunked: every chunk signature, chained from the seed."""
    SHA256 = "sha256"
    """The declared x-amz-content-sha256 must be the hash of the body."""
    DEFERRED = "deferred"
    """No declared hash (botocore's plain signing): the signature covers the body's hash, checked at its end."""


@dataclass(frozen=True)
class SignedRequest:
    """A request whose headers passed verification."""

    check: PayloadCheck
    seed: sigv4.Signature | None
    """The verified signature (the chain's seed for aws-chunked); None until a DEFERRED body is verified."""
    declared_sha256: str | None
    verify: Callable[[str | None], sigv4.Signature]
    """Recompute the signature for a payload hash and compare it; raises AwsError (403) when it differs."""

    def verify_payload(self, body_sha256: str) -> None:
        """Check the body's hash against what was signed (SHA256 and DEFERRED requests; nothing to do otherwise)."""
        if self.check is PayloadCheck.SHA256:
            if not hmac.compare_digest((self.declared_sha256 or "").lower(), body_sha256):
                raise AwsError(
                    "InvalidSignatureException",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                )
        elif self.check is PayloadCheck.DEFERRED:
            self.verify(body_sha256)


class Authenticator:
    """Verifies requests signed with one set of credentials for one region and the ``medical-imaging`` service."""

    def __init__(
        self,
        credentials: EmulatorCredentials,
        region: str,
        *,
        clock_skew: timedelta = CLOCK_SKEW,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.credentials = credentials
        self.region = region
        self.clock_skew = clock_skew
        self.clock = clock
        self._retired: list[EmulatorCredentials] = []

    def rotate(self, credentials: EmulatorCredentials) -> None:
        """Accept ``credentials`` from now on; the ones they replace are answered ``ExpiredTokenException``."""
        if credentials != self.credentials:
            self._retired.append(self.credentials)
            self.credentials = credentials

    def authenticate(self, method: str, raw_path: str, query_string: str, headers: Mapping[str, str]) -> SignedRequest:
        """Verify a request's headers (names lower-case); the body is verified afterwards (see PayloadCheck)."""
        value = headers.get("authorization")
        if not value:
            raise AwsError("MissingAuthenticationTokenException", "Missing Authentication Token")
        try:
            auth = sigv4_verify.parse_authorization(value)
        except ValueError:
            raise AwsError(
                "IncompleteSignatureException",
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters "
                "(AWS4-HMAC-SHA256).",
            ) from None
        credentials = self.credentials  # a rotation while the body arrives does not change what signed it
        token = headers.get("x-amz-security-token")
        if not hmac.compare_digest(auth.access_key.encode(), credentials.access_key.encode()):
            self._refuse_retired(auth.access_key, token)
            raise AwsError("UnrecognizedClientException", _INVALID_TOKEN)
        self._check_token(credentials, auth.access_key, token, auth.signed_headers)
        missing = [name for name in ("host", "x-amz-date") if name not in auth.signed_headers]
        if missing:
            raise AwsError("IncompleteSignatureException", f"SignedHeaders must include {' and '.join(missing)}.")
        absent = [name for name in auth.signed_headers if name not in headers]
        if absent:
            raise AwsError("IncompleteSignatureException", f"Signed header '{absent[0]}' is missing from the request.")
        timestamp = headers["x-amz-date"]
        self._check_date(timestamp, auth.date)
        if auth.region != self.region:
            raise AwsError(
                "InvalidSignatureException", f"Credential should be scoped to a valid region ('{self.region}')."
            )
        if auth.service != SERVICE:
            raise AwsError("InvalidSignatureException", f"Credential should be scoped to correct service: '{SERVICE}'.")

        declared = headers.get("x-amz-content-sha256")
        check = self._payload_check(declared, headers)
        signed = {name: headers[name] for name in auth.signed_headers}
        url = "http://emulator" + raw_path + (f"?{query_string}" if query_string else "")

        def verify(payload_sha256: str | None) -> sigv4.Signature:
            for host in _host_variants(headers["host"]):
                recomputed = sigv4_verify.recompute(
                    credentials,
                    self.region,
                    method,
                    url,
                    {**signed, "host": host},
                    timestamp,
                    payload_sha256=payload_sha256,
                )
                if hmac.compare_digest(recomputed.signature, auth.signature):
                    return recomputed
            raise AwsError("InvalidSignatureException", SIGNATURE_MISMATCH)

        seed = None if check is PayloadCheck.DEFERRED else verify(declared)
        return SignedRequest(check, seed, declared, verify)

    def _check_token(
        self, credentials: EmulatorCredentials, access_key: str, token: str | None, signed_headers: tuple[str, ...]
    ) -> None:
        expected = credentials.token
        if expected is None and token is None:
            return
        if expected is None or token is None or not hmac.compare_digest(token.encode(), expected.encode()):
            self._refuse_retired(access_key, token)
            raise AwsError("UnrecognizedClientException", _INVALID_TOKEN)
        if "x-amz-security-token" not in signed_headers:
            raise AwsError("IncompleteSignatureException", "SignedHeaders must include x-amz-security-token.")

    def _refuse_retired(self, access_key: str, token: str | None) -> None:
        """Raise ExpiredTokenException when the key and token are those of credentials rotated out."""
        for retired in self._retired:
            same_key = hmac.compare_digest(access_key.encode(), retired.access_key.encode())
            if same_key and hmac.compare_digest((token or "").encode(), (retired.token or "").encode()):
                raise AwsError("ExpiredTokenException", _EXPIRED_TOKEN)

    def _check_date(self, timestamp: str, scope_date: str) -> None:
        try:
            signed_at = sigv4_verify.parse_timestamp(timestamp).replace(tzinfo=UTC)
        except ValueError:
            raise AwsError("IncompleteSignatureException", "X-Amz-Date must be in the ISO-8601 basic format.") from None
        if scope_date != timestamp[:8]:
            raise AwsError(
                "InvalidSignatureException",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.",
            )
        now = self.clock()
        minutes = int(self.clock_skew.total_seconds() // 60)
        if signed_at < now - self.clock_skew:
            raise AwsError(
                "InvalidSignatureException",
                f"Signature expired: {timestamp} is now earlier than {now - self.clock_skew:{_AMZ_DATE}} "
                f"({now:{_AMZ_DATE}} - {minutes} min.)",
            )
        if signed_at > now + self.clock_skew:
            raise AwsError(
                "InvalidSignatureException",
                f"Signature not yet current: {timestamp} is still later than {now + self.clock_skew:{_AMZ_DATE}} "
                f"({now:{_AMZ_DATE}} + {minutes} min.)",
            )

    @staticmethod
    def _payload_check(declared: str | None, headers: Mapping[str, str]) -> PayloadCheck:
        chunked = is_aws_chunked(headers)
        if declared == sigv4.STREAMING_PAYLOAD:
            return PayloadCheck.CHUNKS if chunked else PayloadCheck.NONE
        if chunked:
            raise AwsError(
                "ValidationException",
                f"an aws-chunked body needs x-amz-content-sha256: {sigv4.STREAMING_PAYLOAD} (the emulator verifies "
                "signed chunks only)",
            )
        if declared is None:
            return PayloadCheck.DEFERRED
        if declared == UNSIGNED_PAYLOAD:
            return PayloadCheck.NONE
        if _SHA256_HEX.fullmatch(declared):
            return PayloadCheck.SHA256
        raise AwsError("ValidationException", "x-amz-content-sha256 must be a SHA-256 hex digest or a known literal")


def _host_variants(host: str) -> list[str]:
    """The Host header as received, then without its port: some signers (curl 7.x) sign the host name alone."""
    bare = _PORT.sub("", host)
    return [host] if bare == host else [host, bare]
