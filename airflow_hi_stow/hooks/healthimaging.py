"""The AWS HealthImaging STOW-RS hook: credentials, region, TLS and proxy settings from an Airflow AWS connection."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.config import Config

from airflow_hi_stow.core import healthimaging, redaction, sigv4
from airflow_hi_stow.core.report import build_import_report
from airflow_hi_stow.core.results import StoreResult
from airflow_hi_stow.engine.importer import ImportSettings, store_files
from airflow_hi_stow.hooks.secrets import masked_credentials
from airflow_hi_stow.readback.image_sets import describe_image_sets
from airflow_hi_stow.transport.auth import SigV4StowAuth, refresh_now
from airflow_hi_stow.transport.client import StowClient
from airflow_hi_stow.transport.retry import RetryPolicy
from airflow_hi_stow.transport.session import DEFAULT_MAX_CONNECTIONS, HttpSettings

SERVICE = healthimaging.SERVICE


class HealthImagingStowHook(AwsBaseHook):
    """Stores DICOM P10 files into an AWS HealthImaging data store with StoreDICOM / StoreDICOMStudy.

    The AWS connection governs the STOW-RS requests as it governs boto3: credentials (keys, session token,
    profile, ``role_arn`` assumption...), frozen anew for every request; ``verify`` (false, or a CA bundle path;
    else ``AWS_CA_BUNDLE``); ``config_kwargs`` (``proxies``, ``proxies_config``, ``connect_timeout``,
    ``read_timeout``, ``max_pool_connections``), and ``HTTPS_PROXY``/``NO_PROXY``. Connection extras read here:

    - ``region_name``: the data store's region (the ``region_name`` argument wins);
    - ``datastore_id``: the data store, when the ``datastore_id`` argument is not given;
    - ``dicomweb_endpoint_url``: the DICOMweb base URL; else the connection's ``endpoint_url`` (which also
      redirects the boto3 ``medical-imaging`` client, as for the local emulator); else
      ``https://dicom-medical-imaging.{region}.amazonaws.com``;
    - ``payload_signing``: ``streaming`` (default, HealthImaging's documented form: the signature covers the
      headers only), ``aws-chunked`` (every chunk signed) or ``sha256`` (the whole body's hash signed).

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
        timeout: float | tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["client_type"] = SERVICE
        super().__init__(aws_conn_id=aws_conn_id, region_name=region_name, **kwargs)
        self._datastore_id = datastore_id
        self.retry_policy = retry_policy
        self.timeout = timeout
        redaction.install()

    def get_client_type(self, region_name: str | None = None, config: Config | None = None, deferrable: bool = False):  # type: ignore[no-untyped-def]
        """The boto3 client; with a custom endpoint botocore must not prefix its host with ``runtime-``."""
        if config is None and self.conn_config.get_service_endpoint_url(SERVICE):
            config = self.config.merge(Config(inject_host_prefix=False))
        return super().get_client_type(region_name=region_name, config=config, deferrable=deferrable)

    @property
    def datastore_id(self) -> str | None:
        return self._datastore_id or self.conn_config.extra_dejson.get("datastore_id") or None

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
            raise ValueError("datastore_id is required to store instances (an argument, or the connection extra)")
        return f"{self.dicomweb_endpoint_url}/datastore/{self.datastore_id}"

    def _require_region(self) -> str:
        if not self.region_name:
            raise ValueError(
                f"no AWS region for connection {self.aws_conn_id!r}: set the region_name extra or argument"
            )
        return self.region_name

    @cached_property
    def _boto3_session(self) -> Any:
        """One boto3 session for the hook's life (each ``get_session()`` would assume the role again)."""
        return self.get_session()

    @cached_property
    def _session_credentials(self) -> Any:
        """botocore's credentials of the session (refreshable ones for an assumed role)."""
        credentials = self._boto3_session.get_credentials()
        if credentials is None:
            raise ValueError(f"no AWS credentials found for connection {self.aws_conn_id!r}")
        return credentials

    @cached_property
    def _credentials(self) -> Callable[[], sigv4.Credentials]:
        """The session's credentials, frozen per request (refreshed before expiry), registered with Airflow's
        secrets masker as they appear."""
        return masked_credentials(self._session_credentials.get_frozen_credentials)

    def http_settings(self, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> HttpSettings:
        """The connection's TLS, proxy, timeout and pool settings, as boto3 applies them."""
        botocore_session = getattr(self._boto3_session, "_session", None)
        ca_bundle = botocore_session.get_config_variable("ca_bundle") if botocore_session is not None else None
        settings = HttpSettings.from_botocore(
            self.config, self.verify, ca_bundle=ca_bundle, max_connections=max_connections
        )
        if self.timeout is None:
            return settings
        connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout, self.timeout)
        return replace(settings, connect_timeout=connect, read_timeout=read)

    def get_stow_client(self, *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> StowClient:
        """A STOW-RS client for this data store, signing with this connection's credentials. Close it when done
        (or use it as a context manager)."""
        auth = SigV4StowAuth(
            self._credentials,
            self._require_region(),
            self.payload_signing,
            refresh=lambda: refresh_now(self._session_credentials),
        )
        return StowClient(
            self.datastore_url(),
            auth=auth,
            http=self.http_settings(max_connections),
            retry=self.retry_policy,
            single_part=True,
            max_request_bytes=healthimaging.MAX_REQUEST_BYTES,
        )

    @cached_property
    def stow_client(self) -> StowClient:
        return self.get_stow_client()

    def import_report(self, summaries: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
        """The report of store tasks' summaries (``core.report.build_import_report``; a task that returned nothing
        is left out) with every image set of their studies read back (SearchImageSets, GetImageSet): primary or
        non-primary, and the grouping elements that conflict."""
        stored = [summary for summary in summaries if summary]
        studies = {study for summary in stored for study in summary.get("image_sets", {})}
        image_sets = describe_image_sets(self.conn, str(self.datastore_id), studies)
        return build_import_report(stored, [info.to_dict() for info in image_sets])

    def store_instances(
        self,
        files: Any,
        study_instance_uid: str | None = None,
        *,
        settings: ImportSettings | None = None,
        raise_on_error: bool = True,
    ) -> StoreResult:
        """Store DICOM P10 files (paths, directories, globs, ``s3://`` URIs...) through the import engine, as the
        operator does (parallel connections, adaptive throttling), but without a manifest or resume; with
        ``study_instance_uid``, through StoreDICOMStudy. With ``raise_on_error``, the first request that fails as a
        whole stops the import and its error is raised."""
        return store_files(
            self.stow_client,
            files,
            study_instance_uid,
            settings=settings,
            s3_client=self._s3_client,
            raise_on_error=raise_on_error,
        )

    def _s3_client(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id).get_conn()
