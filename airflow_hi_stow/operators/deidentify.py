"""DeidentifyDicomOperator: DICOM PS3.15 Annex E de-identification of local or S3 files, before validation and
import."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_hi_stow.deid import BurnedInPolicy, InvalidKeyError, ProfileOptions, SafePrivate
from airflow_hi_stow.engine.deidentify import deidentify_source, quarantine_limit, quarantine_violation
from airflow_hi_stow.hooks.deidentification import DeidentificationKeyHook
from airflow_hi_stow.operators.records import default_manifest_location, quiet_s3_client, task_instance_parts
from airflow_hi_stow.storage.locations import open_location

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


OPTION_FLAGS = (
    "retain_longitudinal_full_dates",
    "retain_longitudinal_modified_dates",
    "retain_patient_characteristics",
    "retain_device_identity",
    "retain_institution_identity",
    "retain_uids",
    "retain_safe_private",
    "clean_descriptors",
    "clean_structured_content",
    "clean_graphics",
)
"""The ``ProfileOptions`` the operator takes as arguments of the same names (templated, so DAG params can set them)."""


def flag(name: str, value: Any) -> bool:
    """A templated on/off argument: a bool, or the text a template renders one to (``"True"``, ``"false"``...)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", "", "none"):
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


class DeidentifyDicomOperator(AwsBaseOperator[S3Hook]):
    """De-identify DICOM files with the Basic Application Level Confidentiality Profile of PS3.15 Annex E and the
    options chosen, under a key from an Airflow connection, so that every task, mapped instance and retry maps a
    patient, study and UID to the same replacements.

    Returns ``{"manifest": <file list of the outputs>, "files", "destination", "quarantine", "report", "counts",
    ...}``, a ``source`` for ``ValidateDicomOperator`` or ``StoreDicomOperator``. See docs/deidentification.md.

    :param source: as for StoreDicomOperator: a file, directory, glob, ``s3://`` prefix, key or glob, a list of
        these, or a file list such as an upstream task's XCom (templated).
    :param destination: a local directory or ``s3://bucket/prefix`` that receives the de-identified instances only,
        as ``<Study UID>/<Series UID>/<SOP Instance UID>.dcm`` of the new UIDs (templated).
    :param key_conn_id: the connection holding the key in its password (or its extra ``key``), 32 bytes or more
        (templated).
    :param quarantine: where quarantined originals go, each in ``<input_id>/`` with its ``reason.json`` (default: the
        destination's sibling ``<destination>-quarantine``; never inside the destination; templated).
    :param retain_longitudinal_full_dates: PS3.15 E.3 options, as ``ProfileOptions`` names them (all off: the
        Basic Profile alone; templated, e.g. ``"{{ params.retain_uids }}"``); also ``retain_longitudinal_modified_dates``, ``retain_patient_characteristics``,
        ``retain_device_identity``, ``retain_institution_identity``, ``retain_uids``, ``retain_safe_private``,
        ``clean_descriptors``, ``clean_structured_content``, ``clean_graphics``.
    :param safe_private_extra: more private attributes kept by ``retain_safe_private``: mappings ``{"creator",
        "group", "element", "vr"}`` (hex strings or ints) or ``SafePrivate`` values.
    :param allow_burned_in: let through instances suspected of burned-in text (Burned In Annotation YES, US, SC,
        secondary captures...), which are quarantined by default.
    :param ocr: also read each frame with tesseract and quarantine those that hold text.
    :param ocr_languages: tesseract's languages for ``ocr``.
    :param max_quarantined: fail the task, once everything is processed, when more inputs than this were
        quarantined: a count (int) or a share of the inputs (float from 0 to 1). Default: never (they are
        reported).
    :param report_location: a local directory or ``s3://bucket/prefix`` under which each task instance writes its
        list of outputs and its report in ``dag_id=../run_id=../task_id=../map_index=../`` (default:
        ``[hi_stow] manifest_location``, else ``$AIRFLOW_HOME/hi_stow/manifests``; templated).
    :param linkage_location: where to write ``linkage.csv`` (original -> replacement values: patient data), in the
        same per-task-instance folders; off when None (the default; templated).
    :param workers: worker processes (default: one per core, from 64 inputs on).
    :param aws_conn_id: the AWS connection for ``s3://`` sources, destinations and locations (templated).
    :param progress_interval: seconds between progress lines in the task log.
    :param follow_symlinks: follow symbolic links found in source folders (or matched by a glob) that point out of
        them; by default each is reported with that reason and never read, so that a link planted in an incoming
        folder cannot make the task read another file. A path named in ``source`` itself is always followed.
    """

    aws_hook_class = S3Hook
    template_fields: Sequence[str] = aws_template_fields(
        "source",
        "destination",
        "quarantine",
        "key_conn_id",
        "report_location",
        "linkage_location",
        *OPTION_FLAGS,
        "allow_burned_in",
        "ocr",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"source": "py"}
    ui_color = "#e8f0d5"

    def __init__(
        self,
        *,
        source: Any,
        destination: str,
        key_conn_id: str,
        quarantine: str | None = None,
        retain_longitudinal_full_dates: bool | str = False,
        retain_longitudinal_modified_dates: bool | str = False,
        retain_patient_characteristics: bool | str = False,
        retain_device_identity: bool | str = False,
        retain_institution_identity: bool | str = False,
        retain_uids: bool | str = False,
        retain_safe_private: bool | str = False,
        clean_descriptors: bool | str = False,
        clean_structured_content: bool | str = False,
        clean_graphics: bool | str = False,
        safe_private_extra: Iterable[Any] = (),
        allow_burned_in: bool | str = False,
        ocr: bool | str = False,
        ocr_languages: str = "eng",
        max_quarantined: int | float | None = None,
        report_location: str | None = None,
        linkage_location: str | None = None,
        workers: int | None = None,
        progress_interval: float = 30.0,
        follow_symlinks: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.destination = destination
        self.key_conn_id = key_conn_id
        self.quarantine = quarantine
        self.retain_longitudinal_full_dates = retain_longitudinal_full_dates
        self.retain_longitudinal_modified_dates = retain_longitudinal_modified_dates
        self.retain_patient_characteristics = retain_patient_characteristics
        self.retain_device_identity = retain_device_identity
        self.retain_institution_identity = retain_institution_identity
        self.retain_uids = retain_uids
        self.retain_safe_private = retain_safe_private
        self.clean_descriptors = clean_descriptors
        self.clean_structured_content = clean_structured_content
        self.clean_graphics = clean_graphics
        self.safe_private_extra = safe_private_extra
        self.allow_burned_in = allow_burned_in
        self.ocr = ocr
        self.ocr_languages = ocr_languages
        self.max_quarantined = max_quarantined
        self.report_location = report_location
        self.linkage_location = linkage_location
        self.workers = workers
        self.progress_interval = progress_interval
        self.follow_symlinks = follow_symlinks

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            key = DeidentificationKeyHook(self.key_conn_id).get_key()
        except InvalidKeyError as exc:
            raise AirflowFailException(str(exc)) from None  # the same key on a retry: fail now
        options = ProfileOptions(
            **{name: flag(name, getattr(self, name)) for name in OPTION_FLAGS},
            safe_private_extra=tuple(SafePrivate.of(entry) for entry in self.safe_private_extra),
        )
        burned_in = BurnedInPolicy(
            allow=flag("allow_burned_in", self.allow_burned_in),
            ocr=flag("ocr", self.ocr),
            ocr_languages=self.ocr_languages,
        )
        limit = quarantine_limit(self.max_quarantined)
        parts = task_instance_parts(context)
        s3_client = self._s3_client
        summary = deidentify_source(
            self.source,
            self.destination,
            key,
            records=open_location(self.report_location or default_manifest_location(), parts, s3_client),
            quarantine=self.quarantine,
            options=options,
            burned_in=burned_in,
            linkage=open_location(self.linkage_location, parts, s3_client) if self.linkage_location else None,
            s3_client=s3_client,
            workers=self.workers,
            progress_interval=self.progress_interval,
            follow_symlinks=self.follow_symlinks,
            log=self.log,
        )
        violation = quarantine_violation(limit, summary["counts"])
        if violation:
            raise AirflowException(f"{violation}; summary: {json.dumps(summary)}")
        return summary

    def _s3_client(self) -> Any:
        return quiet_s3_client(self.hook)
