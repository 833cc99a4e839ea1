"""Test helpers for DAGs and code that use HealthImaging: a local emulator in a subprocess.

    with start_emulator() as emulator:
        os.environ["AIRFLOW_CONN_AHI"] = emulator.aws_connection_json()
        ...  # run the DAG / the hook against it
        client = emulator.boto3_client()  # SearchImageSets, GetImageSetMetadata, ...

With pytest, the ``healthimaging_emulator`` fixture (installed with this package) does the same for one test.
The emulator runs as ``python -m airflow_hi_stow.emulator`` on a free loopback port with a temporary data
directory and generated credentials, so that a test can kill it, restart it, or inject faults.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from airflow_hi_stow.emulator.certificates import TlsFiles

READY = re.compile(
    r"HealthImaging emulator listening on (?P<url>\S+) datastore_id=(?P<datastore_id>[0-9a-z]{32}) "
    r"region=(?P<region>\S+)"
)
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


class EmulatorError(RuntimeError):
    """The emulator did not start, or stopped unexpectedly."""


@dataclass
class RunningEmulator:
    """A running emulator subprocess and what a client needs to reach it."""

    data_dir: Path
    access_key: str
    secret_key: str
    session_token: str | None = None
    region: str = "us-east-1"
    no_auth: bool = False
    extra_args: Sequence[str] = ()
    tls: TlsFiles | None = None
    """Serve ``https://`` with these files; clients trust :attr:`ca_bundle`."""
    url: str = ""
    datastore_id: str = ""
    port: int = 0
    log_path: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def dicomweb_url(self) -> str:
        """The default data store's DICOMweb base URL (the one ``/studies`` is appended to)."""
        return f"{self.url}/datastore/{self.datastore_id}"

    def start(self) -> None:
        """Start the emulator (same port and data after a restart) and wait for its readiness line."""
        if self.process is not None and self.process.poll() is None:
            raise EmulatorError("the emulator is already running")
        command = [
            sys.executable,
            "-m",
            "airflow_hi_stow.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--region",
            self.region,
            *(["--datastore-id", self.datastore_id] if self.datastore_id else []),
            *(["--no-auth"] if self.no_auth else []),
            *(["--tls-cert", str(self.tls.certificate), "--tls-key", str(self.tls.key)] if self.tls else []),
            *self.extra_args,
        ]
        environment = dict(os.environ)
        if not self.no_auth:
            # through the environment, so that the secret never shows in a process list
            environment["HI_STOW_EMULATOR_ACCESS_KEY"] = self.access_key
            environment["HI_STOW_EMULATOR_SECRET_KEY"] = self.secret_key
            if self.session_token:
                environment["HI_STOW_EMULATOR_SESSION_TOKEN"] = self.session_token
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            match = READY.search(self.log_path.read_bytes()[offset:].decode("utf-8", "replace"))
            if match:
                break
            if self.process.poll() is not None:
                raise EmulatorError(f"the emulator exited at start-up:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise EmulatorError(f"the emulator did not start within {START_TIMEOUT:.0f} s:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        self.url = match["url"]
        self.datastore_id = match["datastore_id"]
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> int | None:
        """SIGTERM, then wait (SIGKILL after 15 s); returns the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would end it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Stop and start again with the same data directory, port and credentials."""
        self.stop()
        self.start()

    @property
    def ca_bundle(self) -> str | None:
        """The CA bundle that verifies the emulator's certificate (None over plain HTTP)."""
        return str(self.tls.ca_bundle) if self.tls else None

    def log(self) -> str:
        """What the emulator wrote to stdout and stderr."""
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def aws_connection_json(self, *, s3_endpoint_url: str | None = None, **extra: Any) -> str:
        """The JSON of an Airflow AWS connection to the emulator (for ``AIRFLOW_CONN_<ID>``); ``extra`` adds
        connection extras such as ``payload_signing``. Over TLS, ``verify`` is the emulator's CA bundle. With
        ``s3_endpoint_url`` (moto, LocalStack...), each service gets its own endpoint (``service_config``), so one
        connection serves both the HealthImaging and the S3 side of a DAG."""
        extras: dict[str, Any] = {"region_name": self.region}
        if s3_endpoint_url:
            extras["service_config"] = {
                "medical-imaging": {"endpoint_url": self.url},
                "s3": {"endpoint_url": s3_endpoint_url},
            }
        else:
            extras["endpoint_url"] = self.url
        if self.tls:
            extras["verify"] = self.ca_bundle
        extras.update(extra)
        if self.session_token:
            extras["aws_session_token"] = self.session_token
        return json.dumps({"conn_type": "aws", "login": self.access_key, "password": self.secret_key, "extra": extras})

    def boto3_client(self, **config: Any) -> Any:
        """A boto3 ``medical-imaging`` client for the emulator (``runtime-`` host prefix disabled)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "medical-imaging",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            aws_session_token=self.session_token,
            config=Config(inject_host_prefix=False, **config),
            verify=self.ca_bundle,
        )

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the fault settings, e.g. ``set_faults(error_rate=0.5)``, ``set_faults(throttle_rps=2)``;
        see :class:`airflow_hi_stow.emulator.faults.FaultConfig`."""
        return self._admin("POST", "/_emulator/faults", faults)

    def clear_faults(self) -> None:
        self._admin("DELETE", "/_emulator/faults")

    def rotate_credentials(
        self, *, session_token: str | None = None, access_key: str | None = None, secret_key: str | None = None
    ) -> None:
        """Accept new credentials from now on (requests signed with the old ones get 403 ExpiredTokenException),
        as when an assumed-role session is replaced; a restart keeps the new ones. Unnamed ones are kept."""
        changes = {
            name: value
            for name, value in (
                ("session_token", session_token),
                ("access_key", access_key),
                ("secret_key", secret_key),
            )
            if value is not None
        }
        self._admin("POST", "/_emulator/credentials", changes)
        self.session_token = session_token or self.session_token
        self.access_key = access_key or self.access_key
        self.secret_key = secret_key or self.secret_key

    def stats(self) -> dict[str, Any]:
        """Counters: ``responses`` per status, ``operations``, ``instances`` received/stored/failed, ``bytes``,
        ``faults``, and ``index`` (rows now in the index)."""
        return self._admin("GET", "/_emulator/stats")

    def reset_stats(self) -> None:
        self._admin("DELETE", "/_emulator/stats")

    def image_sets(self, datastore_id: str | None = None) -> list[dict[str, Any]]:
        """The data store's image sets with their primary flag, version and conflicting grouping elements."""
        result: list[dict[str, Any]] = self._admin(
            "GET", f"/_emulator/datastores/{datastore_id or self.datastore_id}/image-sets"
        )
        return result

    def _admin(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        response = requests.request(method, self.url + path, json=body, timeout=30, verify=self.ca_bundle or True)
        if not response.ok:
            raise EmulatorError(f"{method} {path}: HTTP {response.status_code}: {response.text[:500]}")
        return response.json()


@contextmanager
def start_emulator(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    region: str = "us-east-1",
    no_auth: bool = False,
    session_token: str | None = None,
    extra_args: Sequence[str] = (),
    tls: bool = False,
) -> Iterator[RunningEmulator]:
    """A running emulator for the duration of the block, stopped (and its temporary data removed) afterwards.

    ``extra_args`` are passed to ``hi-stow emulator`` (e.g. ``["--fail-rate", "0.5"]``). With ``tls``, it serves
    ``https://`` with a certificate of a throwaway CA (:attr:`RunningEmulator.ca_bundle`).
    """
    from airflow_hi_stow.emulator.certificates import write_test_certificates

    with tempfile.TemporaryDirectory(prefix="hi-stow-emulator-") as scratch:
        emulator = RunningEmulator(
            data_dir=Path(data_dir) if data_dir is not None else Path(scratch) / "data",
            access_key="AKIA" + secrets.token_hex(8).upper(),
            secret_key=secrets.token_urlsafe(30),
            session_token=session_token,
            region=region,
            no_auth=no_auth,
            extra_args=tuple(extra_args),
            tls=write_test_certificates(Path(scratch) / "tls") if tls else None,
        )
        emulator.start()
        try:
            yield emulator
        finally:
            emulator.stop()
