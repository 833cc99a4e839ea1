"""The checks made before sending: what the server would refuse, or what would store the same instance twice."""

from __future__ import annotations

from airflow_hi_stow.core.results import InstanceResult, Outcome
from airflow_hi_stow.core.uids import is_valid_uid
from airflow_hi_stow.sources.instances import DicomInstance
from airflow_hi_stow.transport.client import instance_result

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


class InstanceChecks:
    """The checks of each instance in turn: :meth:`problem` says why the server would refuse it, or why it would
    store the same instance twice (a DICOMDIR, another study than ``study_instance_uid`` for StoreDICOMStudy, a
    SOP Instance UID already seen in this set, larger than ``max_request_bytes``); None when it is fit to send."""

    def __init__(self, study_instance_uid: str | None = None, *, max_request_bytes: int | None = None) -> None:
        if study_instance_uid is not None and not is_valid_uid(study_instance_uid):
            raise ValueError("study_instance_uid is not a valid DICOM UID")
        self.study_instance_uid = study_instance_uid
        self.max_request_bytes = max_request_bytes
        self._first_seen: dict[str, str] = {}

    def problem(self, instance: DicomInstance) -> str | None:
        max_bytes = self.max_request_bytes
        if instance.sop_class_uid == MEDIA_STORAGE_DIRECTORY:
            return "a DICOMDIR (media directory), not an instance to store"
        if self.study_instance_uid is not None and instance.study_instance_uid != self.study_instance_uid:
            return "StudyInstanceUID differs from the study of this StoreDICOMStudy request"
        if instance.sop_instance_uid in self._first_seen:
            return f"duplicate SOP Instance UID: the same instance as {self._first_seen[instance.sop_instance_uid]}"
        if max_bytes is not None and instance.size > max_bytes:
            return f"larger than the {max_bytes}-byte limit per request"
        self._first_seen[instance.sop_instance_uid] = instance.name
        return None

    def rejection(self, instance: DicomInstance) -> InstanceResult | None:
        """The REJECTED result of an instance that has a problem, or None."""
        problem = self.problem(instance)
        return instance_result(instance, Outcome.REJECTED, reason=problem) if problem else None
