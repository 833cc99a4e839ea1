"""Start a real Orthanc with its DICOMweb plugin on loopback, as a third-party STOW-RS server (and client) for tests.

Needs the Debian packages ``orthanc`` and ``orthanc-dicomweb`` (``.ci/run`` installs them).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def unavailable_reason() -> str | None:
    """Why Orthanc tests cannot run here, or None when they can."""
    if shutil.which("Orthanc") is None:
        return "Orthanc is not installed (Debian package 'orthanc'; .ci/run installs it)"
    if not PLUGIN.exists():
        return "Orthanc's DICOMweb plugin is not installed (Debian package 'orthanc-dicomweb')"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Orthanc:
    url: str
    log_path: Path

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def get(self, path: str) -> Any:
        response = requests.get(f"{self.url}{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def instance_ids(self) -> list[str]:
        return list(self.get("/instances"))

    def instance_id(self, sop_instance_uid: str) -> str | None:
        response = requests.post(f"{self.url}/tools/lookup", data=sop_instance_uid, timeout=10)
        response.raise_for_status()
        found = [item["ID"] for item in response.json() if item["Type"] == "Instance"]
        return found[0] if found else None

    def instance_file(self, instance_id: str) -> bytes:
        response = requests.get(f"{self.url}/instances/{instance_id}/file", timeout=30)
        response.raise_for_status()
        return response.content

    def post(self, path: str, body: Any) -> Any:
        response = requests.post(f"{self.url}{path}", json=body, timeout=120)
        response.raise_for_status()
        return response.json()


@contextmanager
def running_orthanc(
    state_dir: Path, *, dicomweb_servers: Mapping[str, Mapping[str, Any]] | None = None
) -> Iterator[Orthanc]:
    """Orthanc on a free loopback port with a fresh storage directory; the DICOM (DIMSE) port stays off."""
    port = free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "Name": "hi-stow-test",
        "StorageDirectory": str(state_dir / "db"),
        "IndexDirectory": str(state_dir / "db"),
        "Plugins": [str(PLUGIN)],
        "HttpServerEnabled": True,
        "HttpPort": port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": False,
        "HttpDescribeErrors": True,
        "OrthancExplorerEnabled": False,
        "WebDavEnabled": False,
        "DicomWeb": {
            "Enable": True,
            "Root": "/dicom-web/",
            "EnableWado": True,
            "Host": f"127.0.0.1:{port}",
            "Ssl": False,
            "Servers": dict(dicomweb_servers or {}),
        },
    }
    config_path = state_dir / "orthanc.json"
    config_path.write_text(json.dumps(config))
    log_path = state_dir / "orthanc.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(["Orthanc", str(config_path)], stdout=log, stderr=subprocess.STDOUT)
    server = Orthanc(f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start-up:\n{log_path.read_text(errors='replace')[-2000:]}")
            try:
                if requests.get(f"{server.url}/system", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("Orthanc did not answer within 20 s")
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
