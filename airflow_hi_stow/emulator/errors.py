"""Errors the emulator answers, in the AWS rest-json form: an ``x-amzn-ErrorType`` header and ``{"message": ...}``."""

from __future__ import annotations

from collections.abc import Mapping

_STATUS = {
    "ValidationException": 400,
    "IncompleteSignatureException": 400,
    "AccessDeniedException": 403,
    "InvalidSignatureException": 403,
    "UnrecognizedClientException": 403,
    "ExpiredTokenException": 403,
    "MissingAuthenticationTokenException": 403,
    "ResourceNotFoundException": 404,
    "ConflictException": 409,
    "RequestEntityTooLargeException": 413,
    "UnsupportedMediaTypeException": 415,
    "ThrottlingException": 429,
    "InternalServerException": 500,
    "NotImplemented": 501,
    "ServiceUnavailableException": 503,
}


class AwsError(Exception):
    """An error response. Its message never holds credentials, signatures or patient data."""

    def __init__(
        self, error_type: str, message: str, *, headers: Mapping[str, str] | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.status = status or _STATUS[error_type]
        self.message = message
        self.headers = dict(headers or {})


def not_found(what: str) -> AwsError:
    return AwsError("ResourceNotFoundException", f"{what} does not exist")


def invalid(message: str) -> AwsError:
    return AwsError("ValidationException", message)
