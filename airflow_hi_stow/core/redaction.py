"""Keeping secrets and patient data out of log lines: request signatures, session tokens, secret keys and the
patient attributes of HealthImaging's API answers, as botocore's DEBUG logging would print them.

:func:`redact` rewrites a text; :class:`RedactingFilter` applies it to log records. Installing the filter is the
caller's choice (:func:`install`): it rewrites only what matches, so the user's other DEBUG lines stay.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
_KEY_ID = r"(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}"
_DICOM_VALUE_KEYS = (
    "DICOMPatientName",
    "DICOMPatientId",
    "DICOMPatientBirthDate",
    "DICOMPatientSex",
    "DICOMAccessionNumber",
    "DICOMStudyId",
    "DICOMStudyDescription",
    "DICOMStudyDate",
    "DICOMStudyTime",
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # SigV4: header, query string, aws-chunked chunk signatures, botocore's "Signature:\n<hex>" DEBUG line
    (re.compile(r"((?:chunk-)?[Ss]ignature=)[0-9a-f]{16,}"), rf"\1{REDACTED}"),
    (re.compile(r"(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s'\"]+", re.IGNORECASE), rf"\1{REDACTED}"),
    (re.compile(r"(Signature:\s*)[0-9a-f]{64}"), rf"\1{REDACTED}"),
    (re.compile(r"(Credential=)[^/,\s]+"), rf"\1{REDACTED}"),
    # the session token: a canonical request's header line, a header dict's repr, a raw header
    (re.compile(r"(x-amz-security-token\s*[:=]\s*)(?:b?['\"])?[^\s'\"]+", re.IGNORECASE), rf"\1{REDACTED}"),
    (re.compile(r"(['\"]X-Amz-Security-Token['\"]\s*:\s*)b?(['\"])[^'\"]*\2", re.IGNORECASE), rf"\1{REDACTED}"),
    (re.compile(r"(['\"]Authorization['\"]\s*:\s*)b?(['\"])[^'\"]*\2", re.IGNORECASE), rf"\1{REDACTED}"),
    (re.compile(r"(Authorization:\s*)\S.*", re.IGNORECASE), rf"\1{REDACTED}"),
    # credentials in STS, SSO and container answers (XML and JSON)
    (re.compile(r"(<(SecretAccessKey|SessionToken)>)[^<]*(</\2>)"), rf"\1{REDACTED}\3"),
    (
        re.compile(
            r"(['\"](?:SecretAccessKey|SessionToken|secretAccessKey|sessionToken|Token)['\"]\s*:\s*)(['\"])[^'\"]*\2"
        ),
        rf"\1{REDACTED}",
    ),
    # patient attributes in SearchImageSets / GetImageSet answers
    (re.compile(r"(['\"](?:" + "|".join(_DICOM_VALUE_KEYS) + r")['\"]\s*:\s*)(['\"])[^'\"]*\2"), rf"\1{REDACTED}"),
    (re.compile(rf"\b{_KEY_ID}\b"), REDACTED),
)
LOGGER_PREFIXES = ("botocore", "boto3", "urllib3", "s3transfer")
"""Loggers whose DEBUG lines can hold request headers, signatures or response bodies."""
_KNOWN_LOGGERS = (
    "botocore.auth",
    "botocore.endpoint",
    "botocore.parsers",
    "botocore.awsrequest",
    "botocore.credentials",
    "botocore.httpsession",
    "botocore.hooks",
    "botocore.utils",
    "botocore.retryhandler",
    "botocore.retries.standard",
    "botocore.regions",
    "urllib3.connectionpool",
)


def redact(text: str) -> str:
    """``text`` without signatures, session tokens, secret keys, access key ids or patient attribute values."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message when it holds something :func:`redact` removes; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = RedactingFilter()


def install() -> None:
    """Attach the filter to botocore's, boto3's and urllib3's loggers (those that exist now, and the modules'
    loggers that may be created later). Idempotent."""
    names = set(_KNOWN_LOGGERS) | {
        name for name in logging.Logger.manager.loggerDict if name.split(".")[0] in LOGGER_PREFIXES
    }
    for name in sorted(names):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
