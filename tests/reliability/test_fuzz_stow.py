"""Fuzzing the client's side of STOW-RS: the Store Instances Response parser on any JSON (and any bytes) a server
may answer, the matching of its listing to the instances sent, and the multipart builder.
No input crashes them: a body that is not a listing is ``NotAStoreResponse``, an instance not listed as stored is
never reported stored."""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
from dataclasses import dataclass
from typing import Any, BinaryIO

from hypothesis import given
from hypothesis import strategies as st

from airflow_hi_stow.core import dicom_json as dj
from airflow_hi_stow.core.results import Outcome
from airflow_hi_stow.core.store_response import NotAStoreResponse, StoreResponse, parse_store_response
from airflow_hi_stow.sources.instances import DicomInstance
from airflow_hi_stow.transport.bodies import MultipartBody
from airflow_hi_stow.transport.client import match_response, parse_answer
from tests.reliability.conftest import examples

UIDS = st.sampled_from(["1.2.3", "1.2.3.4", "1.2.840.10008.1.1", "2.25.1", " 1.2.3 ", "", "1.2.3\x00"])
TAGS = st.sampled_from(
    [dj.REFERENCED_SOP_SEQUENCE, dj.FAILED_SOP_SEQUENCE, dj.OTHER_FAILURES_SEQUENCE, dj.RETRIEVE_URL,
     dj.REFERENCED_SOP_INSTANCE_UID, dj.SOP_INSTANCE_UID, dj.REFERENCED_SOP_CLASS_UID, dj.FAILURE_REASON,
     dj.WARNING_REASON, "00081199".lower(), "vr", "Value", "message", "0008119a"]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=30), UIDS
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.one_of(TAGS, st.text(max_size=10)), children, max_size=5)
    ),
    max_leaves=40,
)
ELEMENT = st.fixed_dictionaries({"vr": st.sampled_from(["SQ", "UI", "US", "UR", "XX"]), "Value": JSON_VALUES})
MODULES = st.dictionaries(TAGS, st.one_of(ELEMENT, JSON_VALUES), max_size=6)


@dataclass(frozen=True)
class Sent:
    """Stands for a file sent: only its name, size and identifiers matter here."""

    name: str
    size: int = 1

    def open(self) -> BinaryIO:
        return io.BytesIO(b"x")

    def read_range(self, start: int, end: int) -> bytes:
        return b"x"[start:end]


def sent(uids: list[str]) -> list[DicomInstance]:
    return [DicomInstance(Sent(f"f{n}"), "1.2.840.10008.5.1.4.1.1.2", uid, "1.2", "1.3", "1.2.840.10008.1.2.1")
            for n, uid in enumerate(uids)]  # fmt: skip


def check_matching(module: StoreResponse, uids: list[str]) -> None:
    instances = sent(uids)
    results = match_response(module, instances, 200)
    assert [r.source for r in results] == [i.name for i in instances]  # one result per instance, in order
    stored = {item.sop_instance_uid for item in module.referenced}
    failed = {item.sop_instance_uid for item in module.failed}
    for result, instance in zip(results, instances, strict=True):
        if result.outcome.is_stored:  # stored only when listed as stored, and not as failed
            assert instance.sop_instance_uid in stored
            assert instance.sop_instance_uid not in failed
        elif result.outcome is Outcome.FAILED:
            assert instance.sop_instance_uid in failed
        else:
            assert result.outcome is Outcome.UNCONFIRMED
            assert result.reason


@examples(200)
@given(payload=st.one_of(MODULES, JSON_VALUES, st.lists(MODULES, min_size=1, max_size=2)),
       uids=st.lists(UIDS, min_size=1, max_size=4))  # fmt: skip
def test_the_store_response_parser_takes_any_json(payload: Any, uids: list[str]) -> None:
    try:
        module = parse_store_response(payload)
    except NotAStoreResponse:
        return
    check_matching(module, uids)


@examples(150)
@given(body=st.one_of(
    st.binary(max_size=300),
    MODULES.map(lambda m: json.dumps(m).encode()),
    st.integers(1, 5000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 5000).map(lambda depth: b'{"00081199":' * depth + b"{}" + b"}" * depth),
))  # fmt: skip
def test_any_answer_body_is_a_listing_or_none(body: bytes) -> None:
    """Raw bytes as a server sends them, nested deeper than the JSON decoder goes among them."""
    module = parse_answer(body)
    if module is not None:
        check_matching(module, ["1.2.3"])


class InMemory:
    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self.data = data
        self.size = len(data)

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)

    def read_range(self, start: int, end: int) -> bytes:
        return self.data[start:end]


PART_DATA = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.sampled_from([b"\r\n", b"--", b"--hi-stow-", b"\r\n--hi", b"x", b"\n"]), max_size=50).map(b"".join),
)


@examples(200)
@given(parts=st.lists(PART_DATA, min_size=1, max_size=6))
def test_the_multipart_builder_frames_any_data_so_that_a_mime_parser_reads_it_back(parts: list[bytes]) -> None:
    body = MultipartBody([InMemory(f"p{n}", data) for n, data in enumerate(parts)])
    encoded = b"".join(body)
    assert len(encoded) == len(body)
    head = f"Content-Type: {body.content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + encoded)
    assert [bytes(part.get_payload(decode=True)) for part in message.iter_parts()] == parts
