"""A real forward proxy (Debian ``tinyproxy``) on loopback, logging every request it forwards, for the tests of the
connection's proxy settings. ``.ci/run`` installs it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.orthanc import free_port


def unavailable_reason() -> str | None:
    if shutil.which("tinyproxy") is None:
        return "tinyproxy is not installed (Debian package 'tinyproxy'; .ci/run installs it)"
    return None


@dataclass
class Proxy:
    url: str
    log_path: Path

    def connects(self) -> list[str]:
        """The ``host:port`` of every CONNECT (HTTPS tunnel) the proxy was asked for."""
        lines = self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        return [line.split(": CONNECT ", 1)[1].split()[0] for line in lines if ": CONNECT " in line]


@contextmanager
def running_proxy(state_dir: Path) -> Iterator[Proxy]:
    """tinyproxy on a free loopback port, accepting loopback clients, CONNECT allowed to any port."""
    state_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = state_dir / "tinyproxy.log"
    # no LogFile: in the foreground tinyproxy logs to its standard output, a file opened here before it drops
    # root's privileges (to nobody, who may not reach a test's directory)
    lines = [f"Port {port}", "Listen 127.0.0.1", "Timeout 120", "Allow 127.0.0.1", "LogLevel Connect",
             "MaxClients 64"]  # fmt: skip
    if os.geteuid() == 0:
        lines += ["User nobody", "Group nogroup"]
    config = state_dir / "tinyproxy.conf"
    config.write_text("\n".join(lines) + "\n")
    with log_path.open("wb") as out:
        process = subprocess.Popen(["tinyproxy", "-d", "-c", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tinyproxy exited at start-up: {log_path.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("tinyproxy did not listen within 10 s") from None
                time.sleep(0.05)
        yield Proxy(f"http://127.0.0.1:{port}", log_path)
    finally:
        process.terminate()
        process.wait(timeout=10)
