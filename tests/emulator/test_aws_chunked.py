"""aws-chunked decoding with chunk signature verification, on AWS's published S3 example."""

from __future__ import annotations

from datetime import datetime

import pytest

from airflow_hi_stow.core import sigv4
from airflow_hi_stow.emulator.aws_chunked import AwsChunkedDecoder, is_aws_chunked
from airflow_hi_stow.emulator.errors import AwsError
from tests.unit.test_sigv4 import PAYLOAD, s3_seed

# AWS S3 API reference, "Transferring Payload in Multiple Chunks", Example: PUT Object: the body as published.
AWS_BODY = (
    b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
    + b"a" * 65536
    + b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"
    + b"a" * 1024
    + b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n"
)


@pytest.fixture
def seed(monkeypatch: pytest.MonkeyPatch) -> sigv4.Signature:
    """The seed signature of AWS's example (tests/unit/test_sigv4.py checks it against the published value)."""
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: datetime(2013, 5, 24))
    return s3_seed()


def decode(decoder: AwsChunkedDecoder, body: bytes, piece: int) -> bytes:
    out = bytearray()
    for start in range(0, len(body), piece):
        for data in decoder.feed(body[start : start + piece]):
            out += data
    decoder.finish()
    return bytes(out)


@pytest.mark.parametrize("piece", [1, 7, 85, 4096, 65536, len(AWS_BODY)])
def test_the_published_example_decodes_in_pieces_of_any_size(seed: sigv4.Signature, piece: int) -> None:
    assert decode(AwsChunkedDecoder(seed), AWS_BODY, piece) == PAYLOAD


def test_a_changed_chunk_signature_is_refused(seed: sigv4.Signature) -> None:
    body = AWS_BODY.replace(b"0055627c9e", b"0055627c9f")
    with pytest.raises(AwsError) as raised:
        decode(AwsChunkedDecoder(seed), body, 4096)
    assert raised.value.status == 403
    assert raised.value.error_type == "InvalidSignatureException"


def test_a_changed_data_byte_is_refused(seed: sigv4.Signature) -> None:
    body = bytearray(AWS_BODY)
    body[66000] = ord("b")  # inside the second chunk's data
    with pytest.raises(AwsError) as raised:
        decode(AwsChunkedDecoder(seed), bytes(body), 4096)
    assert raised.value.status == 403


def test_the_final_chunk_is_verified_too(seed: sigv4.Signature) -> None:
    body = AWS_BODY.replace(b"b6c6ea8a53", b"b6c6ea8a54")
    decoder = AwsChunkedDecoder(seed)
    with pytest.raises(AwsError):
        decode(decoder, body, len(body))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (AWS_BODY[:-2], "ends before its final"),
        (AWS_BODY[:1000], "ends before its final"),
        (AWS_BODY + b"x", "data after the final chunk"),
        (AWS_BODY.replace(b"400;", b"401;"), "not followed by CRLF"),
        (b"zz;chunk-signature=" + b"0" * 64 + b"\r\n", "malformed chunk header"),
    ],
)
def test_malformed_framing_is_a_validation_error(seed: sigv4.Signature, body: bytes, reason: str) -> None:
    with pytest.raises(AwsError) as raised:
        decode(AwsChunkedDecoder(seed), body, 1000)
    assert raised.value.status in (400, 403)
    if raised.value.status == 400:
        assert reason in raised.value.message


def test_without_a_seed_signatures_are_not_required() -> None:
    unsigned = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    assert decode(AwsChunkedDecoder(None), unsigned, 3) == b"hello world"


def test_a_signed_request_needs_every_chunk_signed(seed: sigv4.Signature) -> None:
    with pytest.raises(AwsError) as raised:
        decode(AwsChunkedDecoder(seed), b"5\r\nhello\r\n0\r\n\r\n", 100)
    assert raised.value.status == 403


def test_content_encoding_lists_are_understood() -> None:
    assert is_aws_chunked({"content-encoding": "aws-chunked"})
    assert is_aws_chunked({"content-encoding": "gzip, AWS-Chunked"})
    assert not is_aws_chunked({"content-encoding": "gzip"})
    assert not is_aws_chunked({})
