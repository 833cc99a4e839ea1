"""The SigV4 payload modes against AWS's published vectors and HealthImaging-shaped fixtures."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

import pytest
from botocore.credentials import ReadOnlyCredentials

from airflow_hi_stow.core import sigv4

CREDENTIALS = ReadOnlyCredentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None)
PAYLOAD = b"a" * 66560
S3_URL = "https://s3.amazonaws.com/examplebucket/chunkObject.txt"
AHI_URL = "https://dicom-medical-imaging.us-east-1.amazonaws.com/datastore/d9a2a515ab294163a2d2f4069eed584c/studies"
AHI_HEADERS = {"Accept": "application/dicom+json", "Content-Type": "application/dicom"}

# AWS S3 API reference, "Signature Calculations for the Authorization Header: Transferring Payload in Multiple
# Chunks", Example: PUT Object (66560 bytes of 'a', 64 KiB chunks).
AWS_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
AWS_CHUNKS = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: datetime(2013, 5, 24))


def s3_seed() -> sigv4.Signature:
    headers = {
        "Content-Encoding": "aws-chunked",
        "Content-Length": "66824",
        "x-amz-content-sha256": sigv4.STREAMING_PAYLOAD,
        "x-amz-decoded-content-length": "66560",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
    }
    return sigv4.sign(CREDENTIALS, "us-east-1", "PUT", S3_URL, headers, service="s3")


def chunk_signatures(body: bytes) -> list[str]:
    return [match.decode() for match in re.findall(rb";chunk-signature=([0-9a-f]{64})\r\n", body)]


def test_seed_signature_matches_aws_example() -> None:
    seed = s3_seed()
    assert seed.signature == AWS_SEED
    assert seed.timestamp == "20130524T000000Z"
    assert seed.scope == "20130524/us-east-1/s3/aws4_request"


def test_chunk_chain_matches_aws_example() -> None:
    body = b"".join(sigv4.aws_chunks([PAYLOAD], sigv4.ChunkSigner(s3_seed())))
    assert chunk_signatures(body) == AWS_CHUNKS
    assert len(body) == 66824 == sigv4.aws_chunked_length(len(PAYLOAD))
    assert body.startswith(f"10000;chunk-signature={AWS_CHUNKS[0]}\r\n".encode())
    assert body.endswith(f"0;chunk-signature={AWS_CHUNKS[2]}\r\n\r\n".encode())


@pytest.mark.parametrize("block", [1, 1000, 8192, 65535, 65536, 65537, 100_000])
def test_chunking_does_not_depend_on_read_block_size(block: int) -> None:
    blocks = [PAYLOAD[i : i + block] for i in range(0, len(PAYLOAD), block)]
    body = b"".join(sigv4.aws_chunks(blocks, sigv4.ChunkSigner(s3_seed())))
    assert chunk_signatures(body) == AWS_CHUNKS


def test_chunked_framing_decodes_back_to_the_payload() -> None:
    body = b"".join(sigv4.aws_chunks([PAYLOAD], sigv4.ChunkSigner(s3_seed()), chunk_size=8192))
    decoded, rest = bytearray(), body
    while rest:
        header, rest = rest.split(b"\r\n", 1)
        size = int(header.split(b";")[0], 16)
        decoded += rest[:size]
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]
    assert bytes(decoded) == PAYLOAD
    assert len(body) == sigv4.aws_chunked_length(len(PAYLOAD), 8192)


@pytest.mark.parametrize(("length", "chunk"), [(0, 65536), (1, 65536), (65536, 65536), (10**6, 8192), (10**9, 65536)])
def test_chunked_length_formula(length: int, chunk: int) -> None:
    full, rest = divmod(length, chunk)
    framed = [chunk] * full + ([rest] if rest else []) + [0]
    assert sigv4.aws_chunked_length(length, chunk) == sum(len(f"{s:x}") + 17 + 64 + 2 + s + 2 for s in framed)


def test_chunks_smaller_than_aws_minimum_are_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        list(sigv4.aws_chunks([PAYLOAD], sigv4.ChunkSigner(s3_seed()), chunk_size=1024))


def ahi_sign(mode: sigv4.PayloadSigning) -> sigv4.Signature:
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    headers = {**AHI_HEADERS, **sigv4.payload_headers(mode, len(PAYLOAD), digest)}
    return sigv4.sign(CREDENTIALS, "us-east-1", "POST", AHI_URL, headers)


def test_streaming_mode_is_healthimagings_documented_form() -> None:
    """Mode A: the fixture of shared/reference/sigv4-streaming.md §4.3, computed independently."""
    signed = ahi_sign(sigv4.PayloadSigning.STREAMING)
    assert signed.signature == "c96c792ec07295a1599bf4ca7ac989aab16de114928bdd8bb104f908c84fbbeb"
    assert signed.headers["X-Amz-Content-SHA256"] == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    assert signed.headers["X-Amz-Decoded-Content-Length"] == "66560"
    assert (
        "SignedHeaders=accept;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length,"
        in (signed.headers["Authorization"])
    )


def test_sha256_mode_signs_the_body_hash() -> None:
    signed = ahi_sign(sigv4.PayloadSigning.SHA256)
    assert signed.signature == "2f190f8e3fd8c9742af9473ba973a258a5a4aac8669f4a4f5f4a7f719d1fc3a8"
    assert signed.headers["X-Amz-Content-SHA256"] == hashlib.sha256(PAYLOAD).hexdigest()


def test_sha256_mode_agrees_with_botocore_hashing_the_body_itself() -> None:
    """botocore's S3 signer hashes the body and sends the hash header itself; given the hash up front, ours must
    produce the very same Authorization header."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method="POST", url=AHI_URL, headers=dict(AHI_HEADERS), data=PAYLOAD)
    S3SigV4Auth(CREDENTIALS, "medical-imaging", "us-east-1").add_auth(request)
    assert request.headers["X-Amz-Content-SHA256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert ahi_sign(sigv4.PayloadSigning.SHA256).headers["Authorization"] == request.headers["Authorization"]


def test_aws_chunked_mode_fixture() -> None:
    seed = ahi_sign(sigv4.PayloadSigning.AWS_CHUNKED)
    assert seed.signature == "f8d0970594d5acac9ec17db5a10c61d215003b6cdcc7b44dec11246cdf64b3b8"
    body = b"".join(sigv4.aws_chunks([PAYLOAD], sigv4.ChunkSigner(seed)))
    assert chunk_signatures(body) == [
        "ff725c1db9f0c206d84601fa30a70252ff6f43efaf9dbf69f5da88a614bb7057",
        "deaf67ba8b03da3b1e2a2928eb70870418b69b0c53cb6d15b31ccadcc5c595a1",
        "3da702e4a7c6170cdab4eae8987c713e3bc930a37b729e693bd1bf152dc8f822",
    ]


def test_session_token_is_sent_and_signed() -> None:
    credentials = ReadOnlyCredentials(CREDENTIALS.access_key, CREDENTIALS.secret_key, "session-token-value")
    headers = {**AHI_HEADERS, **sigv4.payload_headers(sigv4.PayloadSigning.STREAMING, 10)}
    signed = sigv4.sign(credentials, "us-east-1", "POST", AHI_URL, headers)
    assert signed.headers["X-Amz-Security-Token"] == "session-token-value"
    assert ";x-amz-security-token," in signed.headers["Authorization"]


def test_payload_headers_per_mode() -> None:
    assert sigv4.payload_headers(sigv4.PayloadSigning.STREAMING, 5) == {
        "X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "X-Amz-Decoded-Content-Length": "5",
    }
    assert sigv4.payload_headers(sigv4.PayloadSigning.AWS_CHUNKED, 5)["Content-Encoding"] == "aws-chunked"
    with pytest.raises(ValueError, match="hash"):
        sigv4.payload_headers(sigv4.PayloadSigning.SHA256, 5)
