"""Fuzzing the emulator's request parsers: the multipart/related splitter, the aws-chunked decoder (with chunk
signatures verified) and the reading of a received part as DICOM. A well-formed body of any content, cut in pieces
of any size, reads back exactly; a damaged one is refused with the emulator's own error (400/403), never another
exception; a part of any bytes is an instance or a PS3.18 failure."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.credentials import ReadOnlyCredentials
from hypothesis import example, given
from hypothesis import strategies as st

from airflow_hi_stow.core import multipart, sigv4
from airflow_hi_stow.emulator.aws_chunked import AwsChunkedDecoder
from airflow_hi_stow.emulator.body import MultipartSink, ReceivedPart
from airflow_hi_stow.emulator.dicom_parts import CANNOT_UNDERSTAND, ParsedInstance, PartFailure, parse_part
from airflow_hi_stow.emulator.errors import AwsError
from tests.reliability.conftest import examples
from tests.support.tiny_dicom import _template, write_tiny_instances

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns of the invalid values made here

TINY_SOP_VR = _template().find(b"\x08\x00\x18\x00UI") + 4
"""Where the VR of the SOP Instance UID lies in a tiny instance (its placeholder UIDs have the real ones' length)."""
CREDENTIALS = ReadOnlyCredentials("AKIDEXAMPLE", "fuzzing-secret", None)
TRICKY = st.sampled_from([b"\r\n", b"--", b"--b", b"\r\n--b", b"\r\n--b--", b"0;", b";chunk-signature=", b"\n", b"x"])
DATA = st.one_of(st.binary(max_size=1500), st.lists(TRICKY, max_size=40).map(b"".join))
PIECES = st.lists(st.integers(1, 700), min_size=1, max_size=8)


def in_pieces(body: bytes, sizes: list[int]) -> list[bytes]:
    pieces: list[bytes] = []
    start = 0
    for size in itertools.cycle(sizes):
        if start >= len(body):
            return pieces
        pieces.append(body[start : start + size])
        start += size
    raise AssertionError("unreachable")


def refusal(action: Callable[[], object]) -> AwsError | None:
    """The emulator's error that ``action`` raised, or None; any other exception fails the test."""
    try:
        action()
    except AwsError as error:
        return error
    return None


def split(body: bytes, boundary: str, sizes: list[int], directory: Path) -> list[bytes]:
    sink = MultipartSink(directory, boundary)
    try:
        for piece in in_pieces(body, sizes):
            sink.write(piece)
        return [part.path.read_bytes() for part in sink.finish()]
    finally:
        sink.files.discard()


@examples(150, scratch=True)
@given(parts=st.lists(DATA, min_size=1, max_size=5), sizes=PIECES)
def test_a_multipart_body_of_any_parts_in_any_pieces_splits_back_into_them(
    parts: list[bytes], sizes: list[int], tmp_path: Path
) -> None:
    boundary = multipart.new_boundary()
    opening = multipart.part_opening(boundary)
    body = b"".join(opening + part + multipart.PART_CLOSING for part in parts) + multipart.closing_delimiter(boundary)
    assert split(body, boundary, sizes, tmp_path / "parts") == parts


@examples(150, scratch=True)
@given(
    parts=st.lists(DATA, min_size=1, max_size=3),
    damage=st.lists(st.tuples(st.integers(0, 5000), st.binary(max_size=8)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 5000)),
    sizes=PIECES,
    boundary=st.sampled_from(["b", "hi-stow-0123", "x" * 70]),
)
def test_a_damaged_multipart_body_is_split_or_refused_with_a_400(
    parts: list[bytes],
    damage: list[tuple[int, bytes]],
    cut: int | None,
    sizes: list[int],
    boundary: str,
    tmp_path: Path,
) -> None:
    original = b"".join(
        multipart.part_opening(boundary) + part + multipart.PART_CLOSING for part in parts
    ) + multipart.closing_delimiter(boundary)
    body = bytearray(original)
    for offset, replacement in damage:
        at = offset % (len(body) + 1)
        body[at : at + len(replacement)] = replacement
    if cut is not None:
        del body[cut % (len(body) + 1) :]
    received: list[list[bytes]] = []
    error = refusal(lambda: received.append(split(bytes(body), boundary, sizes, tmp_path / "parts")))
    if error is not None:
        assert (error.status, error.error_type) == (400, "ValidationException")
    else:
        assert sum(map(len, received[0])) < len(body)  # parts of what was sent, never more
        delimiter = f"\r\n--{boundary}".encode()
        if body == original and not any(delimiter in b"\r\n" + part for part in parts):  # left as it was
            assert received == [parts]


def signed_chunks(data: bytes, chunk_size: int) -> tuple[sigv4.Signature, bytes]:
    seed = sigv4.sign(
        CREDENTIALS,
        "us-east-1",
        "POST",
        "https://example.org/datastore/x/studies",
        sigv4.payload_headers(sigv4.PayloadSigning.AWS_CHUNKED, len(data)),
    )
    return seed, b"".join(sigv4.aws_chunks([data], sigv4.ChunkSigner(seed), chunk_size))


def decode(decoder: AwsChunkedDecoder, body: bytes, sizes: list[int]) -> bytes:
    out = bytearray()
    for piece in in_pieces(body, sizes):
        for data in decoder.feed(piece):
            out += data
    decoder.finish()
    return bytes(out)


@examples(150)
@given(data=st.binary(max_size=40_000), chunk=st.sampled_from([8192, 9000, 65536]), sizes=PIECES)
def test_an_aws_chunked_body_of_any_data_in_any_pieces_decodes_back_to_it(
    data: bytes, chunk: int, sizes: list[int]
) -> None:
    seed, body = signed_chunks(data, chunk)
    assert decode(AwsChunkedDecoder(seed), body, sizes) == data


@examples(150)
@given(
    data=st.binary(min_size=1, max_size=20_000),
    damage=st.lists(st.tuples(st.integers(0, 30_000), st.binary(min_size=1, max_size=6)), min_size=1, max_size=3),
    cut=st.one_of(st.none(), st.integers(0, 30_000)),
    sizes=PIECES,
    signed=st.booleans(),
)
def test_a_damaged_aws_chunked_body_is_refused_never_taken_for_other_data(
    data: bytes, damage: list[tuple[int, bytes]], cut: int | None, sizes: list[int], signed: bool
) -> None:
    seed, body = signed_chunks(data, 8192)
    damaged = bytearray(body)
    for offset, replacement in damage:
        at = offset % len(damaged)
        damaged[at : at + len(replacement)] = replacement
    if cut is not None:
        del damaged[cut % (len(damaged) + 1) :]
    decoded: list[bytes] = []
    error = refusal(lambda: decoded.append(decode(AwsChunkedDecoder(seed if signed else None), bytes(damaged), sizes)))
    if error is not None:
        assert error.status in (400, 403)
    elif signed:  # a body that still verifies is the one that was signed
        assert decoded == [data]


@pytest.fixture(scope="module")
def instance_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    (instance,) = write_tiny_instances(tmp_path_factory.mktemp("tiny"), 1)
    return instance.path.read_bytes()


@example(damage=[(TINY_SOP_VR, b"AI")], cut=None).via("an unknown VR for SOP Instance UID: pydicom raises late")
@examples(150, scratch=True)
@given(
    damage=st.lists(st.tuples(st.integers(0, 800), st.binary(min_size=1, max_size=8)), max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 800)),
)
def test_a_received_part_of_any_bytes_is_an_instance_or_a_ps318_failure(
    instance_bytes: bytes, damage: list[tuple[int, bytes]], cut: int | None, tmp_path: Path
) -> None:
    data = bytearray(instance_bytes)
    for offset, replacement in damage:
        at = offset % (len(data) + 1)
        data[at : at + len(replacement)] = replacement
    if cut is not None:
        del data[cut % (len(data) + 1) :]
    path = tmp_path / "part.dcm"
    path.write_bytes(bytes(data))
    parsed = parse_part(ReceivedPart(path, len(data)))
    assert isinstance(parsed, ParsedInstance | PartFailure)
    if isinstance(parsed, PartFailure):
        assert parsed.reason == CANNOT_UNDERSTAND
        assert parsed.detail
    else:
        assert parsed.sop_instance_uid
