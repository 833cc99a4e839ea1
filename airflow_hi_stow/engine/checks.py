"""The checks made before sending: what the server would refuse, or what would store the same instance twice."""

from __future__ import annotations

from collections.abc import Iterable

from airflow_hi_stow.core.results import InstanceResult, Outcome
from airflow_hi_stow.core.uids import is_valid_uid
from airflow_hi_stow.sources.instances import DicomInstance
from airflow_hi_stow.transport.client import instance_result

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


def check_instances(
    instances: Iterable[DicomInstance],
    study_instance_uid: str | None = None,
    *,
    max_request_bytes: int | None = None,
) -> tuple[list[DicomInstance], list[InstanceResult]]:
    """The instances fit to send, and a REJECTED result (with its reason) for each of the others: a DICOMDIR,
    another study than ``study_instance_uid`` (StoreDICOMStudy), a SOP Instance UID already present in this set, or
    larger than ``max_request_bytes``."""
    if study_instance_uid is not None and not is_valid_uid(study_instance_uid):
        raise ValueError("study_instance_uid is not a valid DICOM UID")
    accepted: list[DicomInstance] = []
    rejected: list[InstanceResult] = []
    first_seen: dict[str, str] = {}
    for instance in instances:
        problem = None
        if instance.sop_class_uid == MEDIA_STORAGE_DIRECTORY:
            problem = "a DICOMDIR (media directory), not an instance to store"
        elif study_instance_uid is not None and instance.study_instance_uid != study_instance_uid:
            problem = "StudyInstanceUID differs from the study of this StoreDICOMStudy request"
        elif instance.sop_instance_uid in first_seen:
            problem = f"duplicate SOP Instance UID: the same instance as {first_seen[instance.sop_instance_uid]}"
        elif max_request_bytes is not None and instance.size > max_request_bytes:
            problem = f"larger than the {max_request_bytes}-byte limit per request"
        if problem:
            rejected.append(instance_result(instance, Outcome.REJECTED, reason=problem))
        else:
            first_seen[instance.sop_instance_uid] = instance.name
            accepted.append(instance)
    return accepted, rejected
