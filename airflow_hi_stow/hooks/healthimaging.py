"""The AWS HealthImaging STOW-RS hook: credentials and region from an Airflow AWS connection."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.config import Config

from airflow_hi_stow.core import healthimaging, sigv4
from airflow_hi_stow.core.batching import DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_INSTANCES
from airflow_hi_stow.core.results import StoreResult
from airflow_hi_stow.stow.auth import SigV4StowAuth
from airflow_hi_stow.stow.client import DEFAULT_TIMEOUT, Source, StowClient, new_session
from airflow_hi_stow.stow.retry import RetryPolicy

SERVICE = healthimaging.SERVICE


class HealthImagingStowHook(AwsBaseHook):
    """Stores DICOM P10 files into an AWS HealthImaging data store with StoreDICOM / StoreDICOMStudy.

    Credentials come from the AWS connection (keys, session token, profile, ``role_arn`` assumption...) and are
    frozen anew for every request. Connection extras read here:

    - ``region_name``: the data store's region (the ``region_name`` argument wins);
    - ``dicomweb_endpoint_url``: the DICOMweb base URL; else the connection's ``endpoint_url`` (which also
      redirects the boto3 ``medical-imaging`` client, as for the local emulator); else
      ``https://dicom-medical-imaging.{region}.amazonaws.com``;
    - ``payload_signing``: ``streaming`` (default, HealthImaging's documented form), ``aws-chunked`` or ``sha256``.

    ``get_conn()`` returns the boto3 ``medical-imaging`` client for the read side (SearchImageSets, GetImageSet).
    """

    hook_name = "AWS HealthImaging (STOW-RS)"

    def __init__(
        self,
        aws_conn_id: str | None = AwsBaseHook.default_conn_name,
        datastore_id: str | None = None,
        region_name: str | None = None,
        *,
        retry_policy: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        kwargs["client_type"] = SERVICE
        super().__init__(aws_conn_id=aws_conn_id, region_name=region_name, **kwargs)
        self.datastore_id = datastore_id
        self.retry_policy = retry_policy
        self.timeout = timeout

    def get_client_type(self, region_name: str | None = None, config: Config | None = None, deferrable: bool = False):  # type: ignore[no-untyped-def]
        """The boto3 client; with a custom endpoint botocore must not prefix its host with ``runtime-``."""
        if config is None and self.conn_config.get_service_endpoint_url(SERVICE):
            config = self.config.merge(Config(inject_host_prefix=False))
        return super().get_client_type(region_name=region_name, config=config, deferrable=deferrable)

    @property
    def dicomweb_endpoint_url(self) -> str:
        explicit = self.conn_config.extra_dejson.get("dicomweb_endpoint_url")
        url = explicit or self.conn_config.get_service_endpoint_url(SERVICE)
        if url:
            return str(url).rstrip("/")
        return healthimaging.dicomweb_endpoint(self._require_region())

    @property
    def payload_signing(self) -> sigv4.PayloadSigning:
        value = self.conn_config.extra_dejson.get("payload_signing", sigv4.PayloadSigning.STREAMING.value)
        try:
            return sigv4.PayloadSigning(value)
        except ValueError:
            choices = ", ".join(mode.value for mode in sigv4.PayloadSigning)
            raise ValueError(f"connection extra payload_signing must be one of {choices}") from None

    def datastore_url(self) -> str:
        if not self.datastore_id:
            raise ValueError("datastore_id is required to store instances")
        return f"{self.dicomweb_endpoint_url}/datastore/{self.datastore_id}"

    def _require_region(self) -> str:
        if not self.region_name:
            raise ValueError(
                f"no AWS region for connection {self.aws_conn_id!r}: set the region_name extra or argument"
            )
        return self.region_name

    @cached_property
    def _credentials(self) -> Callable[[], sigv4.Credentials]:
        """The session's credentials, kept for the hook's life; frozen per request (refreshed before expiry)."""
        credentials = self.get_session().get_credentials()
        if credentials is None:
            raise ValueError(f"no AWS credentials found for connection {self.aws_conn_id!r}")
        return credentials.get_frozen_credentials

    def get_stow_client(
        self, *, max_connections: int = 10, on_retry: Callable[[int | None], None] | None = None
    ) -> StowClient:
        """A STOW-RS client for this data store, signing with this connection's credentials."""
        auth = SigV4StowAuth(self._credentials, self._require_region(), self.payload_signing)
        return StowClient(
            self.datastore_url(),
            auth=auth,
            session=new_session(max_connections),
            retry=self.retry_policy,
            timeout=self.timeout,
            single_part=True,
            max_request_bytes=healthimaging.MAX_REQUEST_BYTES,
            on_retry=on_retry,
        )

    @cached_property
    def stow_client(self) -> StowClient:
        return self.get_stow_client()

    def store_instances(
        self,
        files: Iterable[Source],
        study_instance_uid: str | None = None,
        *,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_batch_instances: int = DEFAULT_MAX_BATCH_INSTANCES,
        raise_on_error: bool = True,
    ) -> StoreResult:
        """Store DICOM P10 files (paths or sources); with ``study_instance_uid``, through StoreDICOMStudy.

        See :meth:`StowClient.store <airflow_hi_stow.stow.client.StowClient.store>`.
        """
        return self.stow_client.store(
            files,
            study_instance_uid,
            max_batch_bytes=max_batch_bytes,
            max_batch_instances=max_batch_instances,
            raise_on_error=raise_on_error,
        )
