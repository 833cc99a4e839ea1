"""The emulator listens on the loopback interface unless told otherwise: started without ``--host``, its only
listening socket is bound to 127.0.0.1 (read from the kernel's table, /proc/net/tcp and tcp6)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_hi_stow.testing import READY

LISTEN = "0A"


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as the kernel writes them) of the sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == LISTEN and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux's /proc/net/tcp")
def test_the_emulator_binds_the_loopback_interface_by_default(tmp_path: Path) -> None:
    log = tmp_path / "emulator.log"
    environment = {**os.environ, "HI_STOW_EMULATOR_ACCESS_KEY": "AKIDLOOPBACK", "HI_STOW_EMULATOR_SECRET_KEY": "s"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow_hi_stow.emulator", "--port", "0", "--data-dir", str(tmp_path / "data")],
            stdout=out, stderr=subprocess.STDOUT, env=environment,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (ready := READY.search(log.read_text("utf-8", "replace"))):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        port = int(ready["url"].rsplit(":", 1)[1])
        assert ready["url"].startswith("http://127.0.0.1:")
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and nothing on 0.0.0.0 or ::
    finally:
        process.terminate()
        process.wait(15)
