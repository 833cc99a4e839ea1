"""A STOW-RS hook for any DICOMweb server (Orthanc, dcm4chee, Google, Azure), without SigV4."""

from __future__ import annotations

from functools import cached_property
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow.providers.common.compat.sdk import BaseHook
from requests.auth import AuthBase, HTTPBasicAuth

from airflow_hi_stow.core.results import StoreResult
from airflow_hi_stow.engine.importer import ImportSettings, store_files
from airflow_hi_stow.transport.client import StowClient
from airflow_hi_stow.transport.retry import RetryPolicy
from airflow_hi_stow.transport.session import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    HttpSettings,
)


class DicomWebStowHook(BaseHook):
    """Stores DICOM P10 files on a DICOMweb STOW-RS server reached through an ``http`` (or ``dicomweb``)
    connection.

    The base URL (the one ``/studies`` is appended to) is the host when it holds a full URL
    (``http://pacs:8042/dicom-web``), else built from host, port and the path in ``schema``. Auth: with the extra
    ``auth_type: bearer`` the password is sent as a bearer token; otherwise login and password as basic auth. TLS:
    the extra ``verify`` (false, or a CA bundle path); proxies: the extra ``proxies`` (``{"https": "http://..."}``),
    else ``HTTPS_PROXY``/``NO_PROXY``.
    """

    conn_name_attr = "http_conn_id"
    default_conn_name = "dicomweb_default"
    conn_type = "dicomweb"
    hook_name = "DICOMweb (STOW-RS)"

    def __init__(
        self,
        http_conn_id: str = default_conn_name,
        *,
        retry_policy: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT),
        single_part: bool = False,
        max_connections: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.http_conn_id = http_conn_id
        self.retry_policy = retry_policy
        self.timeout = timeout
        self.single_part = single_part
        self.max_connections = max_connections

    @cached_property
    def base_url(self) -> str:
        conn = self.get_connection(self.http_conn_id)
        host = (conn.host or "").strip()
        if not host:
            raise ValueError(f"connection {self.http_conn_id!r} has no host (the DICOMweb base URL)")
        path = conn.schema if conn.schema and conn.schema not in ("http", "https") else ""
        if "://" in host:
            parts = urlsplit(host)
            netloc = parts.netloc if parts.port or not conn.port else f"{parts.netloc}:{conn.port}"
            url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        else:
            scheme = (
                conn.schema if conn.schema in ("http", "https") else "https" if conn.conn_type == "https" else "http"
            )
            url = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        return "/".join(part.strip("/") for part in (url, path) if part)

    def _auth(self) -> tuple[AuthBase | None, dict[str, str]]:
        conn = self.get_connection(self.http_conn_id)
        auth_type = str(conn.extra_dejson.get("auth_type") or "basic").lower()
        if auth_type == "bearer":
            if not conn.password:
                raise ValueError(f"connection {self.http_conn_id!r}: auth_type bearer needs the token as password")
            return None, {"Authorization": f"Bearer {conn.password}"}
        if auth_type != "basic":
            raise ValueError(f"connection {self.http_conn_id!r}: auth_type must be basic or bearer")
        return (HTTPBasicAuth(conn.login, conn.password or "") if conn.login else None), {}

    def http_settings(self) -> HttpSettings:
        extra = self.get_connection(self.http_conn_id).extra_dejson
        verify = extra.get("verify", True)
        connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout, self.timeout)
        return HttpSettings(
            verify=verify
            if isinstance(verify, str) and verify.lower() not in ("true", "false")
            else verify not in (False, "false", "False"),
            proxies=dict(extra.get("proxies") or {}),
            connect_timeout=connect,
            read_timeout=read,
            max_connections=self.max_connections,
        )

    def get_conn(self) -> StowClient:
        """A STOW-RS client for the connection's server. Close it when done (or use it as a context manager)."""
        auth, headers = self._auth()
        return StowClient(
            self.base_url,
            auth=auth,
            headers=headers,
            http=self.http_settings(),
            retry=self.retry_policy,
            single_part=self.single_part,
        )

    @cached_property
    def stow_client(self) -> StowClient:
        return self.get_conn()

    def store_instances(
        self,
        files: Any,
        study_instance_uid: str | None = None,
        *,
        settings: ImportSettings | None = None,
        raise_on_error: bool = True,
    ) -> StoreResult:
        """Store DICOM P10 files through the import engine (see
        :meth:`HealthImagingStowHook.store_instances <airflow_hi_stow.hooks.healthimaging.HealthImagingStowHook.store_instances>`);
        with ``study_instance_uid``, on ``/studies/{uid}``."""
        return store_files(
            self.stow_client, files, study_instance_uid, settings=settings, raise_on_error=raise_on_error
        )
