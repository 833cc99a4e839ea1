"""Parsing the Store Instances Response Module as real servers write it, and building it."""

from __future__ import annotations

import json

import pytest

from airflow_hi_stow.core.store_response import (
    FailedInstance,
    NotAStoreResponse,
    ReferencedInstance,
    build_store_response,
    parse_store_response,
)

# As Orthanc 1.10 with DICOMweb plugin 1.7 answered (shared/reference/stow-rs.md §5): an empty 00081198 always.
ORTHANC_200 = {
    "00081190": {"vr": "UR", "Value": ["http://127.0.0.1:8042/dicom-web/studies/1.2.3"]},
    "00081198": {"vr": "SQ"},
    "00081199": {
        "vr": "SQ",
        "Value": [
            {
                "00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
                "00081155": {"vr": "UI", "Value": ["1.2.3.4"]},
                "00081190": {
                    "vr": "UR",
                    "Value": ["http://127.0.0.1:8042/dicom-web/studies/1.2.3/series/1/instances/1.2.3.4"],
                },
            }
        ],
    },
}


def test_orthanc_answer() -> None:
    parsed = parse_store_response(ORTHANC_200)
    assert parsed.retrieve_url == "http://127.0.0.1:8042/dicom-web/studies/1.2.3"
    assert parsed.failed == ()
    (item,) = parsed.referenced
    assert item.sop_instance_uid == "1.2.3.4"
    assert item.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert item.retrieve_url is not None
    assert item.retrieve_url.endswith("/instances/1.2.3.4")
    assert item.warning_reason is None


def test_failures_warnings_and_other_failures() -> None:
    payload = {
        "00081198": {
            "vr": "SQ",
            "Value": [
                {"00081155": {"vr": "UI", "Value": ["1.1"]}, "00081197": {"vr": "US", "Value": [49442]}},
                # AWS's sample reads failed items by (0008,0018): accept it too
                {"00080018": {"vr": "UI", "Value": ["1.2"]}, "00081197": {"vr": "US", "Value": ["43264"]}},
                {"00081197": {"vr": "US", "Value": [272]}},  # names no instance: nothing to match it to
            ],
        },
        "00081199": {
            "vr": "SQ",
            "Value": [{"00081155": {"vr": "UI", "Value": ["1.3"]}, "00081196": {"vr": "US", "Value": [45312]}}],
        },
        "0008119a": {"vr": "SQ", "Value": [{"00081197": {"vr": "US", "Value": [42752]}}]},
    }
    parsed = parse_store_response(payload)
    assert parsed.failed == (FailedInstance("1.1", None, 0xC122), FailedInstance("1.2", None, 0xA900))
    assert parsed.referenced == (ReferencedInstance("1.3", None, None, 0xB100),)
    assert parsed.other_failures == (0xA700,)


def test_empty_object_is_an_empty_module() -> None:
    parsed = parse_store_response({})
    assert (parsed.referenced, parsed.failed, parsed.other_failures) == ((), (), ())


def test_a_one_item_array_is_accepted() -> None:
    assert parse_store_response([ORTHANC_200]).referenced[0].sop_instance_uid == "1.2.3.4"


@pytest.mark.parametrize(
    "payload",
    [{"message": "Access denied"}, ["a", "b"], "text", None, {"__type": "ThrottlingException"}],
)
def test_other_documents_are_not_taken_for_a_response(payload: object) -> None:
    with pytest.raises(NotAStoreResponse):
        parse_store_response(payload)


def test_build_then_parse_round_trips() -> None:
    referenced = [ReferencedInstance("1.2.1", "1.2.840.10008.5.1.4.1.1.4", "http://x/1.2.1", None)]
    failed = [FailedInstance("1.2.2", "1.2.840.10008.5.1.4.1.1.4", 0xC000)]
    built = build_store_response(
        retrieve_url="http://x/studies/1", referenced=referenced, failed=failed, other_failures=[0x0110]
    )
    parsed = parse_store_response(json.loads(json.dumps(built)))
    assert parsed.referenced == tuple(referenced)
    assert parsed.failed == tuple(failed)
    assert parsed.other_failures == (0x0110,)
    assert parsed.retrieve_url == "http://x/studies/1"


def test_build_leaves_out_empty_sequences() -> None:
    assert build_store_response(retrieve_url=None) == {}
