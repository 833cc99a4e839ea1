"""multipart/related framing: RFC 2046 structure, lengths, boundary safety, media-type parsing."""

from __future__ import annotations

import email.parser
import email.policy

import pytest

from airflow_hi_stow.core import multipart


def frame(boundary: str, parts: list[bytes]) -> bytes:
    body = b"".join(multipart.part_opening(boundary) + part + multipart.PART_CLOSING for part in parts)
    return body + multipart.closing_delimiter(boundary)


def test_a_standard_mime_parser_reads_the_parts_back() -> None:
    boundary = multipart.new_boundary()
    parts = [b"first\r\n--not-a-boundary", b"\x00\x01binary", b""]
    head = f"Content-Type: {multipart.multipart_content_type(boundary)}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + frame(boundary, parts))
    assert message.get_content_type() == "multipart/related"
    assert message.get_param("type") == "application/dicom"
    payloads = [part.get_payload(decode=True) for part in message.iter_parts()]
    assert payloads == parts
    assert all(part.get_content_type() == "application/dicom" for part in message.iter_parts())


@pytest.mark.parametrize("sizes", [[], [0], [1], [10, 20, 30], [10**6]])
def test_length_is_known_before_any_data(sizes: list[int]) -> None:
    boundary = "b" * 40
    assert multipart.multipart_length(boundary, sizes) == len(frame(boundary, [b"x" * size for size in sizes]))


def test_content_type_quotes_the_type_parameter() -> None:
    assert multipart.multipart_content_type("abc") == 'multipart/related; type="application/dicom"; boundary=abc'


def test_boundaries_are_random_and_within_rfc_limits() -> None:
    boundaries = {multipart.new_boundary() for _ in range(100)}
    assert len(boundaries) == 100
    assert all(len(b) <= 70 and b.isascii() for b in boundaries)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            'multipart/related; type="application/dicom"; boundary=abc',
            ("multipart/related", "application/dicom", "abc"),
        ),
        (
            'multipart/related; type=application/dicom; boundary="a b"',
            ("multipart/related", "application/dicom", "a b"),
        ),
        ("Multipart/Related;boundary=x;type=application/dicom", ("multipart/related", "application/dicom", "x")),
    ],
)
def test_media_type_parsing_accepts_quoted_and_unquoted_parameters(value: str, expected: tuple[str, str, str]) -> None:
    media_type, params = multipart.parse_media_type(value)
    assert (media_type, params["type"], params["boundary"]) == expected
