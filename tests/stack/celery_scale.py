"""Scale-out on an existing engine: the sample S3 pipeline on Airflow's CeleryExecutor with PostgreSQL, Redis and two
Celery workers on this machine, against moto's S3 and the HealthImaging emulator (``make scale-test``).

It starts everything itself (Debian ``postgresql`` and ``redis-server``, installed when missing and run as root;
Airflow with the celery provider in ``.venv-celery``), uploads a generated set of a few thousand instances to S3,
triggers the DAG through the REST API, waits for the run, and checks that the mapped store tasks ran on both workers
and that every instance was stored once. With ``--fault-rate``, the emulator answers that share of the requests with
503, 500 or 429 in turn, as HealthImaging does under load: the workers' store tasks retry through them, and every
instance must still be stored once. Then it stops every process it started.

    .venv-celery/bin/python -m tests.stack.celery_scale [--dag hi_stow_s3_pipeline] [--patients 40] [--fault-rate 0.2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import requests

from airflow_hi_stow.local_airflow import AWS_CONN_ID, KEY_CONN_ID, POOL, POOL_SLOTS
from airflow_hi_stow.samples import generate_dataset
from airflow_hi_stow.testing import RunningEmulator, start_emulator
from tests.support.emulator_faults import error_faults
from tests.support.orthanc import free_port

ROOT = Path(__file__).resolve().parents[2]
WORKERS = ("w1", "w2")
WORKER_NAME_ENV = "HI_STOW_WORKER_NAME"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def worker_name() -> str:
    """``[core] hostname_callable`` of the workers: tells the two workers on one host apart in task instances."""
    return os.environ.get(WORKER_NAME_ENV) or os.uname().nodename


def say(message: str) -> None:
    print(f"scale-test: {message}", flush=True)


def ensure_packages() -> None:
    missing = [package for binary, package in (("redis-server", "redis-server"),) if shutil.which(binary) is None]
    if not (PG_BIN / "initdb").exists():
        missing.append("postgresql")
    if missing:
        if os.geteuid() != 0:
            raise SystemExit(f"scale-test: install {' '.join(missing)} (Debian packages) first")
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], check=True)


def wait_for(condition: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"scale-test: timed out waiting for {what}")
        time.sleep(1)


@contextmanager
def postgres(scratch: Path) -> Iterator[str]:
    """A PostgreSQL cluster (UTF-8, trust auth on loopback) owned by the ``postgres`` user; its SQLAlchemy URL."""
    data, socket_dir, port = scratch / "pg", scratch / "pg-socket", free_port()
    for folder in (data, socket_dir):
        folder.mkdir()
        shutil.chown(folder, "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [
            *as_postgres,
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "airflow",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [
            *as_postgres,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(socket_dir / "postgres.log"),
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", "airflow"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg2://airflow@127.0.0.1:{port}/airflow"
    finally:
        subprocess.run(
            [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True
        )


@contextmanager
def redis() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""], stdout=subprocess.DEVNULL
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def moto_s3() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per S3 request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


class Processes:
    """The Airflow processes, each in its own process group, stopped together."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, environment: dict[str, str], *args: str) -> None:
        with (self.logs / f"{name}.log").open("wb") as log:
            self.running.append(
                subprocess.Popen(
                    [sys.executable, "-m", "airflow", *args],
                    env=environment,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def check(self) -> None:
        for process in self.running:
            if process.poll() is not None:
                raise SystemExit(f"scale-test: an Airflow process (pid {process.pid}) exited; logs in {self.logs}")

    def stop(self) -> None:
        for process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def airflow_environment(
    logs: Path,
    scratch: Path,
    database: str,
    broker: str,
    api_port: int,
    emulator: RunningEmulator,
    s3_url: str,
    records: str,
) -> dict[str, str]:
    home = scratch / "airflow"
    home.mkdir()
    return {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]),
        "PYTHONPATH": str(ROOT),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database.replace("+psycopg2", ""),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
        "AIRFLOW__CORE__FERNET_KEY": "",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.stack.celery_scale.worker_name",
        "AIRFLOW__CORE__PARALLELISM": "16",
        "AIRFLOW__HI_STOW__MANIFEST_LOCATION": records,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(logs / "tasks"),
        f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}": emulator.aws_connection_json(
            datastore_id=emulator.datastore_id, s3_endpoint_url=s3_url
        ),
        f"AIRFLOW_CONN_{KEY_CONN_ID.upper()}": json.dumps(
            {"conn_type": "generic", "password": secrets.token_urlsafe(48)}
        ),
    }


def upload(sample_root: Path, s3_url: str, bucket: str, prefix: str) -> int:
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_url,
        region_name="us-east-1",
        aws_access_key_id="AKIDSCALE",
        aws_secret_access_key="scale-secret",
    )
    client.create_bucket(Bucket=bucket)
    paths = sorted(p for p in sample_root.rglob("*.dcm"))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: client.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(sample_root)}"), paths))
    return len(paths)


def run(dag_id: str, patients: int, conf_template: str, fault_rate: float = 0.0) -> int:
    ensure_packages()
    started = time.monotonic()
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hi-stow-scale-")))
        scratch.chmod(0o755)
        logs = ROOT / "scale-output"
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir()
        database = stack.enter_context(postgres(scratch))
        broker = stack.enter_context(redis())
        s3_url = stack.enter_context(moto_s3())
        faults = error_faults(fault_rate) if fault_rate else []
        emulator = stack.enter_context(start_emulator(scratch / "emulator", extra_args=faults))
        sample = generate_dataset(
            scratch / "dicom",
            patients=patients,
            studies_per_patient=(1, 2),
            series_per_study=(2, 3),
            instances_per_series=(10, 30),
            redeliver_one_study=False,
        )
        files = upload(sample.root, s3_url, "incoming", "batch-1")
        say(f"{files} instances ({sample.total_bytes / 1e6:.0f} MB) in {len(sample.study_uids)} studies uploaded to S3")
        api_port = free_port()
        environment = airflow_environment(
            logs, scratch, database, broker, api_port, emulator, s3_url, "s3://records/hi-stow"
        )
        create_buckets(s3_url, "records", "deidentified", "quarantine")
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=environment, check=True)
        subprocess.run(
            [sys.executable, "-m", "airflow", "pools", "set", POOL, str(POOL_SLOTS), "STOW-RS"],
            env=environment,
            check=True,
            capture_output=True,
        )
        processes = Processes(logs)
        stack.callback(processes.stop)
        processes.start("api-server", environment, "api-server", "--port", str(api_port))
        for component in ("scheduler", "dag-processor", "triggerer"):
            processes.start(component, environment, component)
        for name in WORKERS:
            worker_env = {
                **environment,
                WORKER_NAME_ENV: name,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            }
            processes.start(
                f"worker-{name}",
                worker_env,
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}@%h",
                "--concurrency",
                "4",
            )
        api = f"http://127.0.0.1:{api_port}/api/v2"
        wait_for(lambda: _dag_ready(api, dag_id, processes), f"the DAG {dag_id} in the API", 180)
        conf = json.loads(conf_template.replace("{bucket}", "incoming").replace("{prefix}", "batch-1"))
        run_id = requests.post(
            f"{api}/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}, timeout=30
        ).json()["dag_run_id"]
        say(f"triggered {dag_id} ({run_id}); waiting")
        triggered = time.monotonic()
        wait_for(lambda: _run_state(api, dag_id, run_id, processes) in ("success", "failed"), "the run", 1800)
        state = _run_state(api, dag_id, run_id, processes)
        elapsed = time.monotonic() - triggered
        instances = requests.get(
            f"{api}/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}, timeout=30
        ).json()["task_instances"]
        stores = [ti for ti in instances if ti["task_id"].startswith("store") and ti["state"] == "success"]
        failed = sorted({ti["task_id"] for ti in instances if ti["state"] in ("failed", "upstream_failed")})
        spread = Counter(ti["hostname"] for ti in stores)
        emulator_stats = emulator.stats()
        stats = {"received": 0, "stored": 0, **emulator_stats.get("instances", {})}
        injected = sum(emulator_stats.get("faults", {}).values())
        say(
            f"run {state} in {elapsed:.0f} s; {len(stores)} store task(s) by worker: {dict(spread)}; "
            f"emulator received {stats['received']}, stored {stats['stored']} of {files} instance(s); "
            f"answers {dict(emulator_stats.get('responses', {}))}, {injected} of them injected faults"
        )
        problems = []
        if state != "success":
            problems.append(f"the run {state} (tasks failed: {', '.join(failed) or 'none'})")
        if set(spread) != set(WORKERS):
            problems.append(f"the store tasks did not run on both workers: {dict(spread)}")
        if stats["received"] != files or emulator_stats["index"]["instances"] != files:
            problems.append("not every instance was stored exactly once")
        if fault_rate and not injected:
            problems.append("the emulator injected no fault")
        say(
            f"{'FAILED: ' + '; '.join(problems) if problems else 'passed'} ({time.monotonic() - started:.0f} s in all; "
            f"logs in {logs})"
        )
        return 1 if problems else 0


def create_buckets(s3_url: str, *buckets: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_url,
        region_name="us-east-1",
        aws_access_key_id="AKIDSCALE",
        aws_secret_access_key="scale-secret",
    )
    for bucket in buckets:
        client.create_bucket(Bucket=bucket)


def _dag_ready(api: str, dag_id: str, processes: Processes) -> bool:
    processes.check()
    try:
        return requests.get(f"{api}/dags/{dag_id}", timeout=10).ok
    except requests.RequestException:
        return False


def _run_state(api: str, dag_id: str, run_id: str, processes: Processes) -> str:
    processes.check()
    return str(requests.get(f"{api}/dags/{dag_id}/dagRuns/{run_id}", timeout=30).json()["state"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dag", default="hi_stow_s3_pipeline")
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument(
        "--conf",
        default='{"source": "s3://{bucket}/{prefix}/", "destination": "s3://deidentified/instances/", '
        '"quarantine": "s3://quarantine/"}',
        help="the run's conf (JSON; {bucket} and {prefix} name the uploaded batch)",
    )
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests answered 503/500/429")
    args = parser.parse_args()
    return run(args.dag, args.patients, args.conf, args.fault_rate)


if __name__ == "__main__":
    sys.exit(main())
