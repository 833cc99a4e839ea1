"""ValidateDicomOperator: check DICOM files before they are stored; the good ones go on to StoreDicomOperator, the
others into a quarantine, each with a JSON reason file beside it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_hi_stow.operators.records import default_manifest_location, quiet_s3_client, task_instance_parts
from airflow_hi_stow.sources.resolve import FileList, refuse_overlap, resolve_sources
from airflow_hi_stow.sources.s3 import S3Client
from airflow_hi_stow.storage.locations import open_location
from airflow_hi_stow.validate import (
    QuarantineFailed,
    TooManyFailures,
    ValidationRun,
    ValidationSettings,
    remove_input,
    validate_files,
)
from airflow_hi_stow.validate.settings import DEFAULT_DCIODVFY_TIMEOUT, DEFAULT_MAX_IN_MEMORY_BYTES

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class ValidateDicomOperator(AwsBaseOperator[S3Hook]):
    """Validate DICOM P10 files before they are stored into AWS HealthImaging (the checks: docs/validation.md).

    Every input ends good or quarantined. The XCom is a file list of the good files, which ``StoreDicomOperator``
    takes as its ``source`` (``source=validate.output``), with the counts::

        {"manifest": ".../good.jsonl", "files": 120, "inputs": 123, "quarantined": 3, "with_warnings": 4,
         "quarantined_earlier": 0, "taken_out_of_quarantine": 0, "checks": {"container.integrity": {"error": 2}, ...},
         "conflicts": 1,
         "quarantine": "<the task instance's quarantine folder>", "report": ".../report.json"}

    :param source: as for StoreDicomOperator: a file, a directory (recursive), a glob, an ``s3://bucket/prefix``
        (or key, or glob), a file list ``{"manifest": ...}`` such as an upstream task's XCom, or a list of these
        (templated). An entry naming nothing is quarantined with its reason (a reason file alone).
    :param quarantine: a local directory or ``s3://bucket/prefix``; each task instance quarantines into its own
        folder under it, ``dag_id=../run_id=../task_id=../map_index=../`` (templated). It and ``report_location``
        must not lie inside a directory, prefix or glob the source names.
    :param severities: check or group names mapped to ``"error"`` (quarantine), ``"warning"`` (report, pass) or
        ``"off"``, over the defaults, e.g. ``{"deid": "error", "consistency.study": "error"}``.
    :param transfer_syntaxes: the transfer syntax UIDs accepted (default: HealthImaging's list).
    :param private_allow_list: private attributes the de-identification gate lets through, written as PS3.15
        writes them: ``"(0009,xx01) GEMS_IDEN_01"``.
    :param dciodvfy: dciodvfy's path, ``"auto"`` (the PATH, or beside this Python) or None; used only when the
        ``iod.dciodvfy`` check is on.
    :param dciodvfy_timeout: seconds per file for dciodvfy.
    :param max_in_memory_bytes: files up to this size are read whole into memory; larger ones in place.
    :param max_failures: fail the task, after everything was checked, quarantined and reported, when more files
        than this were quarantined (an int), or more than this share of the inputs (a float from 0 to 1). None (the
        default): quarantining never fails the task. The failure skips Airflow's retries: a retry of the same
        inputs gives the same split.
    :param move: move failing files into the quarantine (each source is deleted once its copy and reason file
        are there); False (the default) copies them.
    :param report_location: a local directory or ``s3://bucket/prefix`` for ``good.jsonl`` and ``report.json``,
        under ``dag_id=../run_id=../task_id=../map_index=../`` (default: ``[hi_stow] manifest_location``, else
        ``$AIRFLOW_HOME/hi_stow/manifests``; templated). The store step must be able to read ``good.jsonl``: with
        more than one worker, use an ``s3://`` location.
    :param workers: processes checking files (default: this one below 3000 files, else one per core).
    :param follow_symlinks: follow symbolic links found in source folders (or matched by a glob) that point out of
        them; by default each is reported with that reason and never read, so that a link planted in an incoming
        folder cannot make the task read another file. A path named in ``source`` itself is always followed.
    :param aws_conn_id: the AWS connection for ``s3://`` sources, quarantine and report location (templated;
        ``region_name``, ``verify`` and ``botocore_config`` as for any amazon provider operator).
    """

    aws_hook_class = S3Hook
    template_fields: Sequence[str] = aws_template_fields("source", "quarantine", "report_location")
    template_fields_renderers: ClassVar[dict[str, str]] = {"source": "py"}
    ui_color = "#f7ecd5"

    def __init__(
        self,
        *,
        source: Any,
        quarantine: str,
        severities: Mapping[str, str] | None = None,
        transfer_syntaxes: Iterable[str] | None = None,
        private_allow_list: Iterable[str] = (),
        dciodvfy: str | None = "auto",
        dciodvfy_timeout: float = DEFAULT_DCIODVFY_TIMEOUT,
        max_in_memory_bytes: int = DEFAULT_MAX_IN_MEMORY_BYTES,
        max_failures: int | float | None = None,
        move: bool = False,
        report_location: str | None = None,
        workers: int | None = None,
        follow_symlinks: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.quarantine = quarantine
        self.severities = severities
        self.transfer_syntaxes = transfer_syntaxes
        self.private_allow_list = private_allow_list
        self.dciodvfy = dciodvfy
        self.dciodvfy_timeout = dciodvfy_timeout
        self.max_in_memory_bytes = max_in_memory_bytes
        self.max_failures = max_failures
        self.move = move
        self.report_location = report_location
        self.workers = workers
        self.follow_symlinks = follow_symlinks

    def execute(self, context: Context) -> dict[str, Any]:
        if not self.quarantine:
            raise ValueError("no quarantine: pass a local directory or an s3://bucket/prefix")
        settings = ValidationSettings.of(
            self.severities,
            transfer_syntaxes=self.transfer_syntaxes,
            private_allow_list=self.private_allow_list,
            dciodvfy=self.dciodvfy,
            dciodvfy_timeout=self.dciodvfy_timeout,
            max_in_memory_bytes=self.max_in_memory_bytes,
        )
        records = self.report_location or default_manifest_location()
        refuse_overlap(self.source, quarantine=self.quarantine, report_location=records)
        s3_client = self._s3_client()
        parts = task_instance_parts(context)
        quarantine = open_location(self.quarantine, parts, s3_client)
        output = open_location(records, parts, s3_client)
        try:
            run = validate_files(
                resolve_sources(self.source, s3_client, follow_symlinks=self.follow_symlinks),
                quarantine=quarantine,
                output=output,
                settings=settings,
                remove_source=remove_input if self.move else None,
                max_failures=self.max_failures,
                workers=self.workers,
            )
        except TooManyFailures as exc:
            summary = self._summary(exc.run, quarantine.uri)
            raise AirflowFailException(f"{exc}; summary: {json.dumps(summary)}") from None
        except QuarantineFailed as exc:  # the quarantine's store failed: a retry may succeed
            raise AirflowException(f"{exc}; quarantine: {quarantine.uri}") from None
        summary = self._summary(run, quarantine.uri)
        self.log.info(
            "%d of %d file(s) good, %d quarantined into %s; the good files are listed in %s",
            summary["files"],
            summary["inputs"],
            summary["quarantined"],
            quarantine.uri,
            summary["manifest"],
        )
        return summary

    @staticmethod
    def _summary(run: ValidationRun, quarantine: str) -> dict[str, Any]:
        """The XCom: a file list of the good files, with counts (its size does not grow with the file count)."""
        counts = run.summary()
        return FileList(run.manifest).to_source(
            files=counts["good"],
            inputs=counts["inputs"],
            quarantined=counts["quarantined"],
            with_warnings=counts["with_warnings"],
            quarantined_earlier=counts["quarantined_earlier"],
            taken_out_of_quarantine=counts["taken_out_of_quarantine"],
            checks=counts["files_by_check"],
            conflicts=counts["conflicts"],
            quarantine=quarantine,
            report=run.report,
        )

    def _s3_client(self) -> Callable[[], S3Client]:
        return lambda: quiet_s3_client(self.hook)
