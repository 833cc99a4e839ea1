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


def test_delimiter_is_found_across_block_edges() -> None:
    boundary = "hi-stow-0123"
    data = b"x" * 100 + b"\r\n--hi-stow-0123" + b"y" * 10
    for cut in range(len(data)):
        scanner = multipart.DelimiterScanner(boundary)
        assert scanner.feed(data[:cut]) or scanner.feed(data[cut:]), cut


def test_delimiter_at_the_very_start_of_a_part_is_found() -> None:
    assert multipart.DelimiterScanner("b1").feed(b"--b1 and more")


def test_near_misses_are_not_taken_for_the_delimiter() -> None:
    scanner = multipart.DelimiterScanner("boundary")
    assert not scanner.feed(b"plain data\r\n--boundar")
    assert not scanner.feed(b"X\r\n-boundary \r--boundary")


def test_a_bare_lf_before_the_delimiter_counts_as_a_collision() -> None:
    """Not a delimiter to RFC 2046, but lenient parsers (Python's email) end a part there."""
    assert multipart.DelimiterScanner("boundary").feed(b"X \n--boundary")
