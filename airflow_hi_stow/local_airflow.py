"""A local Airflow for trying the sample DAGs in the UI (``make airflow``): ``airflow standalone`` on SQLite with the
HealthImaging emulator, the AWS connection preset to it, the de-identification key and the sample data in place.

    python -m airflow_hi_stow.local_airflow [--output airflow-local] [--port 8080]

Prints the URL and how to log in; Ctrl-C (or SIGTERM) stops Airflow and the emulator. The demo and the UI test use
:func:`airflow_environment` and :class:`LocalAirflow` too.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from airflow_hi_stow.testing import RunningEmulator, start_emulator

AWS_CONN_ID = "aws_healthimaging"
KEY_CONN_ID = "hi_stow_deid_key"
POOL = "healthimaging"
POOL_SLOTS = 4
"""STOW-RS requests of the sample DAGs in flight at once (their stores run in this pool)."""
USER = "admin"
START_TIMEOUT = 180.0


def airflow_environment(
    home: Path, dags_folder: Path, emulator: RunningEmulator, manifests: Path, **extra: str
) -> dict[str, str]:
    """An Airflow of its own (SQLite in ``home``), the AWS connection pointed at the emulator and a
    de-identification key, given only through the environment."""
    key = os.environ.get("HI_STOW_DEMO_DEID_KEY") or secrets.token_urlsafe(48)
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder.resolve()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__HI_STOW__MANIFEST_LOCATION": str(manifests),
        f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}": emulator.aws_connection_json(datastore_id=emulator.datastore_id),
        f"AIRFLOW_CONN_{KEY_CONN_ID.upper()}": json.dumps({"conn_type": "generic", "password": key}),
        **extra,
    }


def airflow(environment: Mapping[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "airflow", *args], env=dict(environment), check=True, capture_output=True)


@dataclass
class LocalAirflow:
    """A running ``airflow standalone`` (its own process group) and how to reach it."""

    url: str
    home: Path
    process: subprocess.Popen[bytes]

    @property
    def password(self) -> str:
        generated = self.home / "simple_auth_manager_passwords.json.generated"
        return str(json.loads(generated.read_text())[USER])

    def token(self) -> str:
        """A JWT for the REST API (and the UI's ``_token`` cookie)."""
        response = requests.post(
            f"{self.url}/auth/token", json={"username": USER, "password": self.password}, timeout=30
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def api(self, method: str, path: str, body: object | None = None) -> object:
        response = requests.request(
            method,
            f"{self.url}/api/v2{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=60,
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@contextmanager
def local_airflow(environment: Mapping[str, str], port: int, log_path: Path) -> Iterator[LocalAirflow]:
    """``airflow standalone`` on ``port`` (4 parallel tasks, DAGs unpaused, one admin user), with the sample DAGs'
    pool; stopped with its whole process group afterwards."""
    url = f"http://127.0.0.1:{port}"
    environment = {
        **environment,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # standalone starts its components as `airflow ...`: this interpreter's, also outside an activated venv
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), environment.get("PATH", os.defpath)]),
    }
    home = Path(environment["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    airflow(environment, "db", "migrate")
    airflow(environment, "pools", "set", POOL, str(POOL_SLOTS), "STOW-RS requests to HealthImaging")
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = LocalAirflow(url, home, process)
    try:
        _wait_healthy(running, log_path)
        yield running
    finally:
        running.stop()


def _wait_healthy(running: LocalAirflow, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if running.process.poll() is not None:
            raise RuntimeError(f"airflow standalone exited; see {log_path}")
        try:
            health = requests.get(f"{running.url}/api/v2/monitor/health", timeout=5).json()
            if health.get("scheduler", {}).get("status") == "healthy" and (running.home / _PASSWORDS).exists():
                return
        except (requests.RequestException, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"airflow standalone was not healthy within {START_TIMEOUT:.0f} s; see {log_path}")
        time.sleep(1)


_PASSWORDS = "simple_auth_manager_passwords.json.generated"


def main(argv: Sequence[str] | None = None) -> int:
    from airflow_hi_stow.demo import SAMPLE_NOTE, write_demo_set

    parser = argparse.ArgumentParser(
        prog="python -m airflow_hi_stow.local_airflow", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--output", type=Path, default=Path("airflow-local"), help="Airflow home, data and logs")
    parser.add_argument("--dags-folder", type=Path, default=Path("dags"))
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    output = args.output.resolve()
    data = output / "data"  # as the sample DAGs' params expect it: data/incoming, data/deidentified, data/quarantine
    if not (data / "incoming").exists():
        write_demo_set(data / "incoming")
    with start_emulator(output / "emulator") as emulator:
        environment = airflow_environment(
            output / "airflow", args.dags_folder, emulator, output / "manifests", HI_STOW_SAMPLE_DATA=str(data)
        )
        with local_airflow(environment, args.port, output / "airflow-standalone.log") as running:
            print(f"Airflow:   {running.url}  (user {USER}, password {running.password})")
            print(f"Emulator:  {emulator.url}, data store {emulator.datastore_id} (connection {AWS_CONN_ID})")
            print(f"Data:      {data / 'incoming'}  ({SAMPLE_NOTE})")
            print("Trigger hi_stow_local_pipeline from the UI with its default params. Ctrl-C stops everything.")
            stop = {"now": False}
            for name in (signal.SIGINT, signal.SIGTERM):
                signal.signal(name, lambda *_: stop.update(now=True))
            while not stop["now"] and running.process.poll() is None:
                time.sleep(0.5)
    print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
