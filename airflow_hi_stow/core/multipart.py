"""multipart/related framing for STOW-RS bodies (PS3.18 §8.7.3.5, RFC 2046 and RFC 2387).

A body is ``--B CRLF part-headers CRLF CRLF data CRLF`` per instance, closed by ``--B-- CRLF``. The framing is
computed here without reading any data, so the total length is known before the first byte is sent.
"""

from __future__ import annotations

import secrets
from email.message import Message

DICOM_MEDIA_TYPE = "application/dicom"
DICOM_JSON_MEDIA_TYPE = "application/dicom+json"


def new_boundary() -> str:
    """A random boundary (RFC 2046 allows up to 70 characters)."""
    return f"hi-stow-{secrets.token_hex(16)}"


def multipart_content_type(boundary: str) -> str:
    """The request Content-Type, with ``type`` quoted as PS3.18 requires (``/`` is not a token character)."""
    return f'multipart/related; type="{DICOM_MEDIA_TYPE}"; boundary={boundary}'


def part_opening(boundary: str) -> bytes:
    """What precedes each part's data: the delimiter line and the part's headers."""
    return f"--{boundary}\r\nContent-Type: {DICOM_MEDIA_TYPE}\r\n\r\n".encode("ascii")


PART_CLOSING = b"\r\n"


def closing_delimiter(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("ascii")


def multipart_length(boundary: str, part_sizes: list[int]) -> int:
    """Total body length for parts of the given sizes."""
    per_part = len(part_opening(boundary)) + len(PART_CLOSING)
    return sum(part_sizes) + per_part * len(part_sizes) + len(closing_delimiter(boundary))


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type into its lower-cased media type and its parameters (quoted or not)."""
    message = Message()
    message["content-type"] = value
    params = {key.lower(): str(val) for key, val in (message.get_params() or [])[1:]}
    return message.get_content_type(), params
