"""The emulator's settings and the state its endpoints share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request

from airflow_hi_stow.core.healthimaging import DEFAULT_LOSSLESS_STORAGE_FORMAT, MAX_REQUEST_BYTES
from airflow_hi_stow.emulator.auth import Authenticator, EmulatorCredentials, SignedRequest
from airflow_hi_stow.emulator.errors import AwsError
from airflow_hi_stow.emulator.faults import FaultConfig, FaultInjector
from airflow_hi_stow.emulator.stats import Stats
from airflow_hi_stow.emulator.storage import Storage
from airflow_hi_stow.emulator.web import BodyStream, header_map

DEFAULT_CREDENTIALS = EmulatorCredentials("test", "test")
"""Used when no credentials are given (as LocalStack does); documented, never a real key."""
ACCOUNT_ID = "000000000000"
MAX_API_BODY = 1024 * 1024
"""The largest control-plane request body the emulator reads (they are small JSON documents)."""
_DEFAULT_DATASTORE_SETTING = "default_datastore_id"


@dataclass(frozen=True)
class EmulatorConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8042
    region: str = "us-east-1"
    credentials: EmulatorCredentials | None = DEFAULT_CREDENTIALS
    """None: no authentication (``--no-auth``), for generic DICOMweb clients."""
    datastore_id: str | None = None
    max_request_bytes: int = MAX_REQUEST_BYTES
    verified_transfer_syntaxes_only: bool = False
    faults: FaultConfig = field(default_factory=FaultConfig)
    tls_cert: Path | None = None
    """Serve ``https://`` with this certificate (PEM, its chain after it) and :attr:`tls_key`."""
    tls_key: Path | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


@dataclass
class EmulatorContext:
    """What the endpoints share: settings, storage, counters, faults, the verifier and the default data store."""

    config: EmulatorConfig
    storage: Storage
    stats: Stats
    faults: FaultInjector
    authenticator: Authenticator | None
    default_datastore_id: str

    @classmethod
    def open(cls, config: EmulatorConfig) -> EmulatorContext:
        """Open (or create) the data directory; on first start (or for a new ``datastore_id``) create the default
        data store."""
        storage = Storage(config.data_dir)
        authenticator = Authenticator(config.credentials, config.region) if config.credentials else None
        datastore_id = _default_datastore(storage, config.datastore_id)
        return cls(config, storage, Stats(), FaultInjector(config.faults), authenticator, datastore_id)

    def arn(self, datastore_id: str, image_set_id: str | None = None) -> str:
        arn = f"arn:aws:medical-imaging:{self.config.region}:{ACCOUNT_ID}:datastore/{datastore_id}"
        return f"{arn}/imageset/{image_set_id}" if image_set_id else arn

    @property
    def drain_limit(self) -> int:
        """How much of an unwanted body is read and discarded before answering (beyond it: close)."""
        return 2 * self.config.max_request_bytes

    def authenticate(self, request: Request, headers: dict[str, str]) -> SignedRequest | None:
        """Verify the request's headers (None when authentication is off); see Authenticator."""
        if self.authenticator is None:
            return None
        return self.authenticator.authenticate(
            request.method,
            request.scope["raw_path"].decode("latin-1"),
            request.scope.get("query_string", b"").decode("latin-1"),
            headers,
        )

    async def signed_body(self, request: Request) -> bytes:
        """Read a small request body and verify the request's signature over it (when authentication is on)."""
        body = bytearray()
        async for chunk in BodyStream(request.receive).chunks():
            body += chunk
            if len(body) > MAX_API_BODY:
                raise AwsError("ValidationException", f"request body larger than {MAX_API_BODY} bytes")
        signed = self.authenticate(request, header_map(request.scope["headers"]))
        if signed is not None:
            signed.verify_payload(hashlib.sha256(body).hexdigest())
        return bytes(body)


def _default_datastore(storage: Storage, requested: str | None) -> str:
    if requested is None:
        current = storage.setting(_DEFAULT_DATASTORE_SETTING)
        datastore = storage.get_datastore(current) if current else None
        if datastore is not None and datastore.status == "ACTIVE":
            return datastore.id
    else:
        datastore = storage.get_datastore(requested)
        if datastore is not None and datastore.status != "ACTIVE":
            raise ValueError(f"data store {requested} was deleted in this data directory")
    created = storage.create_datastore(
        "default", storage_format=DEFAULT_LOSSLESS_STORAGE_FORMAT, datastore_id=requested
    )
    storage.set_setting(_DEFAULT_DATASTORE_SETTING, created.id)
    return created.id
