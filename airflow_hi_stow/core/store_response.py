"""The Store Instances Response Module (PS3.18 Annex I) in DICOM JSON: parse it, and build it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_hi_stow.core import dicom_json as dj

_MODULE_TAGS = frozenset(
    {dj.RETRIEVE_URL, dj.FAILED_SOP_SEQUENCE, dj.REFERENCED_SOP_SEQUENCE, dj.OTHER_FAILURES_SEQUENCE}
)


class NotAStoreResponse(ValueError):
    """The payload is not a Store Instances Response Module."""


@dataclass(frozen=True)
class ReferencedInstance:
    """An item of ReferencedSOPSequence: an instance the server stored."""

    sop_instance_uid: str
    sop_class_uid: str | None = None
    retrieve_url: str | None = None
    warning_reason: int | None = None


@dataclass(frozen=True)
class FailedInstance:
    """An item of FailedSOPSequence: an instance the server did not store."""

    sop_instance_uid: str
    sop_class_uid: str | None = None
    failure_reason: int | None = None


@dataclass(frozen=True)
class StoreResponse:
    retrieve_url: str | None
    referenced: tuple[ReferencedInstance, ...]
    failed: tuple[FailedInstance, ...]
    other_failures: tuple[int, ...]


def _instance_uid(item: dj.JsonObject) -> str | None:
    # The standard macro names the instance with (0008,1155); some servers (and AWS's sample) use (0008,0018).
    return dj.first_string(item, dj.REFERENCED_SOP_INSTANCE_UID) or dj.first_string(item, dj.SOP_INSTANCE_UID)


def parse_store_response(payload: Any) -> StoreResponse:
    """Parse a decoded DICOM JSON body. Accepts the module object, or a one-item array holding it.

    Raises NotAStoreResponse when the payload is something else (an error document, HTML, ...).
    """
    if isinstance(payload, list) and len(payload) == 1:
        payload = payload[0]
    if not isinstance(payload, Mapping):
        raise NotAStoreResponse(f"expected a DICOM JSON object, got {type(payload).__name__}")
    if payload and not any(key.upper() in _MODULE_TAGS for key in payload):
        raise NotAStoreResponse("the object has none of the Store Instances Response Module attributes")

    referenced = []
    for item in dj.sequence_items(payload, dj.REFERENCED_SOP_SEQUENCE):
        uid = _instance_uid(item)
        if uid:
            referenced.append(
                ReferencedInstance(
                    sop_instance_uid=uid,
                    sop_class_uid=dj.first_string(item, dj.REFERENCED_SOP_CLASS_UID),
                    retrieve_url=dj.first_string(item, dj.RETRIEVE_URL),
                    warning_reason=dj.first_int(item, dj.WARNING_REASON),
                )
            )
    failed = []
    for item in dj.sequence_items(payload, dj.FAILED_SOP_SEQUENCE):
        uid = _instance_uid(item)
        if uid:
            failed.append(
                FailedInstance(
                    sop_instance_uid=uid,
                    sop_class_uid=dj.first_string(item, dj.REFERENCED_SOP_CLASS_UID),
                    failure_reason=dj.first_int(item, dj.FAILURE_REASON),
                )
            )
    other = [dj.first_int(item, dj.FAILURE_REASON) for item in dj.sequence_items(payload, dj.OTHER_FAILURES_SEQUENCE)]
    return StoreResponse(
        retrieve_url=dj.first_string(payload, dj.RETRIEVE_URL),
        referenced=tuple(referenced),
        failed=tuple(failed),
        other_failures=tuple(code for code in other if code is not None),
    )


def build_store_response(
    *,
    retrieve_url: str | None,
    referenced: Sequence[ReferencedInstance] = (),
    failed: Sequence[FailedInstance] = (),
    other_failures: Iterable[int] = (),
) -> dict[str, Any]:
    """The DICOM JSON a STOW-RS server answers with. Sequences appear only when they have items."""
    module: dict[str, Any] = {}
    if retrieve_url:
        module[dj.RETRIEVE_URL] = dj.element("UR", retrieve_url)
    if failed:
        module[dj.FAILED_SOP_SEQUENCE] = dj.sequence(
            {
                **({dj.REFERENCED_SOP_CLASS_UID: dj.element("UI", item.sop_class_uid)} if item.sop_class_uid else {}),
                dj.REFERENCED_SOP_INSTANCE_UID: dj.element("UI", item.sop_instance_uid),
                **(
                    {dj.FAILURE_REASON: dj.element("US", item.failure_reason)}
                    if item.failure_reason is not None
                    else {}
                ),
            }
            for item in failed
        )
    if referenced:
        module[dj.REFERENCED_SOP_SEQUENCE] = dj.sequence(
            {
                **({dj.REFERENCED_SOP_CLASS_UID: dj.element("UI", item.sop_class_uid)} if item.sop_class_uid else {}),
                dj.REFERENCED_SOP_INSTANCE_UID: dj.element("UI", item.sop_instance_uid),
                dj.RETRIEVE_URL: dj.element("UR", *([item.retrieve_url] if item.retrieve_url else [])),
                **(
                    {dj.WARNING_REASON: dj.element("US", item.warning_reason)}
                    if item.warning_reason is not None
                    else {}
                ),
            }
            for item in referenced
        )
    other = list(other_failures)
    if other:
        module[dj.OTHER_FAILURES_SEQUENCE] = dj.sequence({dj.FAILURE_REASON: dj.element("US", code)} for code in other)
    return module
