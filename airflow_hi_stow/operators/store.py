"""StoreDicomOperator: batched, parallel, resumable imports into AWS HealthImaging through STOW-RS."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException

from airflow_hi_stow.core.batching import DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_INSTANCES
from airflow_hi_stow.core.results import Outcome
from airflow_hi_stow.core.summary import FailurePolicy
from airflow_hi_stow.engine.importer import ImportSettings, run_import
from airflow_hi_stow.hooks.healthimaging import HealthImagingStowHook
from airflow_hi_stow.links.healthimaging import HealthImagingDatastoreLink
from airflow_hi_stow.operators.records import default_manifest_location, s3_client_factory, task_instance_parts
from airflow_hi_stow.readback.image_sets import find_image_sets
from airflow_hi_stow.sources.s3 import S3Client
from airflow_hi_stow.storage.locations import open_location

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

DEFAULT_FAIL_ON = (Outcome.FAILED.value, Outcome.UNCONFIRMED.value)


class StoreDicomOperator(AwsBaseOperator[HealthImagingStowHook]):
    """Store DICOM P10 files into an AWS HealthImaging data store with StoreDICOM / StoreDICOMStudy.

    :param datastore_id: the data store (templated; default: the connection's ``datastore_id`` extra).
    :param source: a file, a directory (recursive), a glob, an ``s3://bucket/prefix`` (or key, or glob), or a list
        of these, e.g. an upstream task's XCom (templated).
    :param aws_conn_id: the AWS connection for HealthImaging (templated). Its ``verify`` and ``config_kwargs``
        (proxies, timeouts) govern the STOW-RS requests as they govern boto3.
    :param study_instance_uid: store everything with StoreDICOMStudy for this study; files of other studies are
        rejected (templated).
    :param per_study: without ``study_instance_uid``, send each study with StoreDICOMStudy for that study.
    :param region_name: the data store's region (default: the connection's; templated).
    :param verify: TLS verification: False, or a CA bundle path (default: the connection's; templated).
    :param botocore_config: botocore ``Config`` options, e.g. proxies and timeouts (templated).
    :param s3_conn_id: the AWS connection for S3 sources and an S3 manifest location (default: ``aws_conn_id``).
    :param manifest_location: a local directory or ``s3://bucket/prefix`` under which each task instance keeps its
        manifest and resume ledger in ``dag_id=../run_id=../task_id=../map_index=../`` (default:
        ``[hi_stow] manifest_location``, else ``$AIRFLOW_HOME/hi_stow/manifests``; templated).
    :param max_batch_bytes: bytes of DICOM per request (HealthImaging accepts up to 1 GB).
    :param max_batch_instances: instances per request.
    :param max_connections: parallel requests at most (lowered automatically while throttled).
    :param max_requests_per_second: a cap on new requests per second (default: none until throttled).
    :param max_failures: how many inputs may end in a ``fail_on`` outcome (an int), or which share (a float from 0
        to 1), before the task fails, after everything was attempted.
    :param fail_on: the outcomes that count as failures: ``failed``, ``unconfirmed`` (default), ``rejected``,
        ``stored_with_warning``.
    :param resume: skip what an earlier try of this task instance confirmed stored (see the ledger).
    :param image_set_studies: afterwards, look up the image sets of at most this many stored studies with
        SearchImageSets (0: do not).
    :param progress_interval: seconds between progress lines in the task log.
    :param follow_symlinks: follow symbolic links found in source folders (or matched by a glob) that point out of
        them; by default each is reported with that reason and never read, so that a link planted in an incoming
        folder cannot make the task read another file. A path named in ``source`` itself is always followed.
    """

    aws_hook_class = HealthImagingStowHook
    template_fields: Sequence[str] = aws_template_fields(
        "source", "datastore_id", "study_instance_uid", "manifest_location", "botocore_config"
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"source": "py"}
    ui_color = "#d5e8f7"
    operator_extra_links = (HealthImagingDatastoreLink(),)

    def __init__(
        self,
        *,
        source: Any,
        datastore_id: str | None = None,
        study_instance_uid: str | None = None,
        per_study: bool = False,
        s3_conn_id: str | None = None,
        manifest_location: str | None = None,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_batch_instances: int = DEFAULT_MAX_BATCH_INSTANCES,
        max_connections: int = 4,
        max_requests_per_second: float | None = None,
        max_failures: int | float = 0,
        fail_on: Iterable[str] = DEFAULT_FAIL_ON,
        resume: bool = True,
        image_set_studies: int = 100,
        progress_interval: float = 15.0,
        follow_symlinks: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.datastore_id = datastore_id
        self.source = source
        self.study_instance_uid = study_instance_uid
        self.per_study = per_study
        self.s3_conn_id = s3_conn_id
        self.manifest_location = manifest_location
        self.max_batch_bytes = max_batch_bytes
        self.max_batch_instances = max_batch_instances
        self.max_connections = max_connections
        self.max_requests_per_second = max_requests_per_second
        self.max_failures = max_failures
        self.fail_on = fail_on
        self.resume = resume
        self.image_set_studies = image_set_studies
        self.progress_interval = progress_interval
        self.follow_symlinks = follow_symlinks

    @property
    def _hook_parameters(self) -> dict[str, Any]:
        return {**super()._hook_parameters, "datastore_id": self.datastore_id}

    def execute(self, context: Context) -> dict[str, Any]:
        policy = FailurePolicy.of(self.max_failures, self.fail_on)
        settings = ImportSettings(
            study_instance_uid=self.study_instance_uid or None,
            per_study=self.per_study,
            max_batch_bytes=self.max_batch_bytes,
            max_batch_instances=self.max_batch_instances,
            max_connections=self.max_connections,
            max_requests_per_second=self.max_requests_per_second,
            resume=self.resume,
            progress_interval=self.progress_interval,
            follow_symlinks=self.follow_symlinks,
        )
        datastore_id = self.hook.datastore_id
        if not datastore_id:
            raise ValueError("no data store: pass datastore_id, or set the AWS connection's datastore_id extra")
        HealthImagingDatastoreLink.persist_for(
            context, self, self.hook.region_name, datastore_id, self.hook.dicomweb_endpoint_url
        )
        s3_client = self._s3_client()
        location = open_location(
            self.manifest_location or default_manifest_location(), task_instance_parts(context), s3_client
        )
        with self.hook.get_stow_client(max_connections=self.max_connections) as client:
            summary = run_import(
                self.source,
                client=client,
                location=location,
                settings=settings,
                s3_client=s3_client,
                image_sets=self._image_sets(datastore_id) if self.image_set_studies > 0 else None,
                log=self.log,
            )
        summary = {"datastore_id": datastore_id, **summary}
        violation = policy.violation(summary["counts"])
        if violation:
            raise AirflowException(f"{violation}; summary: {json.dumps(summary)}")
        return summary

    def _image_sets(self, datastore_id: str) -> Callable[[set[str]], dict[str, Any]]:
        return lambda studies: find_image_sets(self.hook.conn, datastore_id, studies, limit=self.image_set_studies)

    def _s3_client(self) -> Callable[[], S3Client]:
        return s3_client_factory(self.s3_conn_id or self.aws_conn_id)
