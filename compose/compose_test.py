"""``make compose-test``: docker-compose.yaml brought up for real under podman, the sample pipeline triggered through
Airflow's REST API, its outcome checked in the emulator, and everything torn down, also when a step fails.

No container registry is reachable on the machines this runs on, so the images the compose file names are made
first, from Debian packages and PyPI, and kept for the next run: a Debian base (debootstrap), stand-ins for the
official postgres, redis and apache/airflow images (compose/podman/), then this package's image from ./Dockerfile
on the Airflow stand-in (its AIRFLOW_IMAGE build argument). podman-compose runs the same compose file, with
compose/podman/override.yaml swapping the postgres and redis images. It ignores `service_healthy` and cannot order a
one-shot job that has dependencies itself, so the stack comes up in steps: the services nothing is waited for
(PostgreSQL, Redis, the emulator) until their healthchecks pass, the init job until it exits 0, then the Airflow
services until theirs pass.

Installs what it needs (Debian's podman, runc, debootstrap; podman-compose in a venv of its own) when missing;
needs root for that and for podman. Images, the venv and podman's storage live in ~/.cache/hi-stow-compose
(HI_STOW_COMPOSE_CACHE). Container logs and the run's records go to compose-test-output/.

    python compose/compose_test.py [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import requests
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yaml"
OVERRIDE_FILE = REPO / "compose" / "podman" / "override.yaml"
STAND_INS = REPO / "compose" / "podman"
DOCKERFILE = REPO / "Dockerfile"
OUTPUT = REPO / "compose-test-output"
CACHE = Path(os.environ.get("HI_STOW_COMPOSE_CACHE") or Path.home() / ".cache" / "hi-stow-compose")
PROJECT = "hi-stow-compose-test"

APT_PACKAGES = ("podman", "runc", "catatonit", "golang-github-containernetworking-plugin-dnsname", "debootstrap")
PODMAN_COMPOSE = "podman-compose==1.6.0"  # Debian's 1.0.3 lacks `config` and mangles healthchecks
DEBIAN_SUITE = "bookworm"
DEBIAN_IMAGE = f"localhost/hi-stow-debian:{DEBIAN_SUITE}"
POSTGRES_IMAGE = "localhost/hi-stow-postgres:15"  # the names compose/podman/override.yaml uses
REDIS_IMAGE = "localhost/hi-stow-redis:7"
PACKAGE_IMAGE = "localhost/airflow-hi-stow:compose-test"
LOGIN = {"username": "airflow", "password": "airflow"}  # docker-compose.yaml's defaults
DATA = "/data"  # the host folder HI_STOW_DATA_DIR, as the containers see it
SAMPLES = f"{DATA}/dicom/incoming"  # where the init job generates the sample set (planted PHI, bad files)


@dataclass(frozen=True)
class Pipeline:
    """The DAG run the test triggers, and where its inputs, outputs and report are (container paths)."""

    dag_id: str
    conf: dict[str, Any]
    store_tasks: tuple[str, ...]
    """Mapped task ids whose instances must all succeed and, together, have run on every worker."""
    inputs: str
    """Every file under it must end de-identified or quarantined."""
    outputs: str
    """Every ``*.dcm`` file under it (the de-identified set) must end stored, once."""
    report: str


PIPELINE = Pipeline(
    dag_id="hi_stow_local_pipeline",
    conf={
        "source": SAMPLES,
        "destination": f"{DATA}/dicom/deidentified",
        "quarantine": f"{DATA}/dicom/quarantine",
        "report_path": f"{DATA}/reports/compose-test.json",
    },
    store_tasks=("store_study",),
    inputs=SAMPLES,
    outputs=f"{DATA}/dicom/deidentified",
    report=f"{DATA}/reports/compose-test.json",
)


class StackError(Exception):
    """A step of the test failed; the message says which and why."""


def say(message: str) -> None:
    print(f"compose-test: {message}", flush=True)


@dataclass
class Timer:
    started: float = field(default_factory=time.monotonic)
    phases: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.phases.append((name, time.monotonic() - start))

    def summary(self) -> str:
        parts = [f"{name} {seconds:.0f} s" for name, seconds in self.phases]
        return f"{time.monotonic() - self.started:.0f} s in all ({', '.join(parts)})"


# --- tools -----------------------------------------------------------------------------------------------------------


def run(command: Sequence[str | Path], *, log: Path | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command; its output goes to ``log`` (appended) when given. Raises StackError when it fails."""
    args = [str(part) for part in command]
    if log is None:
        done = subprocess.run(args, text=True, capture_output=True, **kwargs)
        output = done.stdout + done.stderr
    else:
        with log.open("a") as out:
            out.write(f"$ {' '.join(args)}\n")
            out.flush()
            done = subprocess.run(args, text=True, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        output = f"(output in {log})"
    if done.returncode != 0:
        raise StackError(f"{' '.join(args[:4])}... exited {done.returncode}: {output[-2000:]}")
    return done


def missing_apt_packages() -> list[str]:
    missing = []
    for package in APT_PACKAGES:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        if done.returncode != 0 or "install ok installed" not in done.stdout:
            missing.append(package)
    return missing


def install_tools(log: Path) -> Path:
    """Debian's podman and debootstrap, and podman-compose in a venv of its own; returns podman-compose's path."""
    if os.geteuid() != 0:
        raise StackError("run as root: podman here runs rootful, and debootstrap needs root")
    if missing := missing_apt_packages():
        say(f"installing {' '.join(missing)} (apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update"], log=log, env=env)
        run(["apt-get", "install", "-y", "--no-install-recommends", *missing], log=log, env=env)
    venv = CACHE / "venv"
    podman_compose = venv / "bin" / "podman-compose"
    wanted = PODMAN_COMPOSE.split("==")[1]
    if not podman_compose.exists() or wanted not in run([podman_compose, "--version"]).stdout:
        say(f"installing {PODMAN_COMPOSE} into {venv}")
        run([sys.executable, "-m", "venv", "--clear", venv], log=log)
        run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", PODMAN_COMPOSE], log=log)
    return podman_compose


def configure_podman() -> dict[str, str]:
    """The environment podman and podman-compose run in: the two settings this VM needs (runc and cgroupfs instead
    of crun's hybrid-cgroup refusal, ulimits within what the VM grants) and storage in the cache."""
    CACHE.mkdir(parents=True, exist_ok=True)
    containers_conf = CACHE / "containers.conf"
    containers_conf.write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
        "[engine]\n"
        'runtime = "runc"\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n'
        "[network]\n"
        f'network_config_dir = "{CACHE / "networks"}"\n'
    )
    storage_conf = CACHE / "storage.conf"
    storage_conf.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{CACHE / "storage"}"\nrunroot = "{CACHE / "run"}"\n'
    )
    return {**os.environ, "CONTAINERS_CONF": str(containers_conf), "CONTAINERS_STORAGE_CONF": str(storage_conf)}


# --- images ----------------------------------------------------------------------------------------------------------


def default_airflow_version() -> str:
    """The Airflow version of the Dockerfile's default base image (``apache/airflow:X.Y.Z``)."""
    found = re.search(r"^ARG AIRFLOW_IMAGE=apache/airflow:(\d+\.\d+\.\d+)\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    if not found:
        raise StackError(f"{DOCKERFILE}: no `ARG AIRFLOW_IMAGE=apache/airflow:X.Y.Z` line")
    return found.group(1)


def debian_mirror() -> str:
    """The host's Debian mirror (deb822 sources first), for debootstrap."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.+)$", stanza, re.MULTILINE))
            if DEBIAN_SUITE in fields.get("Suites", "").split() and fields.get("URIs", "").rstrip("/").endswith(
                "/debian"
            ):
                return fields["URIs"].split()[0]
    return "http://deb.debian.org/debian"


def image_exists(env: dict[str, str], name: str) -> bool:
    return subprocess.run(["podman", "image", "exists", name], env=env).returncode == 0


def build_images(env: dict[str, str], log: Path, airflow_image: str, airflow_version: str) -> None:
    """The base images the compose file's stand-ins need; podman's layer cache makes a rebuild a no-op."""
    if not image_exists(env, DEBIAN_IMAGE):
        rootfs = CACHE / "rootfs"
        shutil.rmtree(rootfs, ignore_errors=True)
        say(f"making {DEBIAN_IMAGE} with debootstrap")
        run(["debootstrap", "--variant=minbase", DEBIAN_SUITE, rootfs, debian_mirror()], log=log)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(["podman", "import", "-", DEBIAN_IMAGE], log=log, env=env, stdin=tar.stdout)
        if tar.wait() != 0:
            raise StackError("tar of the debootstrap tree failed")
        shutil.rmtree(rootfs)
    services = STAND_INS / "services.Containerfile"
    for target, name in (("postgres", POSTGRES_IMAGE), ("redis", REDIS_IMAGE)):
        say(f"building {name}")
        run(["podman", "build", "--target", target, "-t", name, "-f", services, STAND_INS], log=log, env=env)
    with tempfile.TemporaryDirectory() as context:
        # The host's CA bundle: pip inside the builds reaches PyPI through this host's TLS-inspecting proxy.
        ca_bundle = os.environ.get("PIP_CERT") or ssl.get_default_verify_paths().cafile
        if not ca_bundle or not Path(ca_bundle).is_file():
            raise StackError("no CA bundle found for pip inside the builds (set PIP_CERT)")
        shutil.copy(ca_bundle, Path(context) / "host-ca.crt")
        shutil.copy(STAND_INS / "airflow-entrypoint", Path(context) / "airflow-entrypoint")
        say(f"building {airflow_image} (Airflow {airflow_version} from PyPI)")
        containerfile = STAND_INS / "airflow-base.Containerfile"
        build_arg = f"AIRFLOW_VERSION={airflow_version}"
        run(
            ["podman", "build", "--build-arg", build_arg, "-t", airflow_image, "-f", containerfile, context],
            log=log,
            env=env,
        )


# --- the stack -------------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    podman_compose: Path
    env: dict[str, str]
    log: Path
    services: dict[str, Any]

    def compose(self, *args: str) -> None:
        command: list[str | Path] = [self.podman_compose, "-p", PROJECT, "-f", COMPOSE_FILE, "-f", OVERRIDE_FILE, *args]
        run(command, log=self.log, env=self.env, cwd=REPO)

    def container(self, service: str) -> str:
        labels = [f"label=com.docker.compose.project={PROJECT}", f"label=com.docker.compose.service={service}"]
        done = run(
            ["podman", "ps", "-a", "-q", *(arg for label in labels for arg in ("--filter", label))], env=self.env
        )
        ids = done.stdout.split()
        if len(ids) != 1:
            raise StackError(f"service {service}: {len(ids)} containers")
        return ids[0]

    def state(self, service: str) -> str:
        return run(
            ["podman", "inspect", "-f", "{{.State.Status}}", self.container(service)], env=self.env
        ).stdout.strip()

    def healthy(self, service: str) -> bool:
        done = subprocess.run(
            ["podman", "healthcheck", "run", self.container(service)], env=self.env, capture_output=True
        )
        return done.returncode == 0

    def wait_healthy(self, services: Sequence[str], timeout: float) -> None:
        """podman-compose starts no healthcheck timers (they need systemd): run each check until it passes."""
        waiting, deadline = list(services), time.monotonic() + timeout
        while waiting:
            for service in list(waiting):
                if self.state(service) == "exited":
                    raise StackError(f"{service} exited: {self.tail(service)}")
                if "healthcheck" not in self.services[service] or self.healthy(service):
                    waiting.remove(service)
            if waiting and time.monotonic() > deadline:
                raise StackError(f"not healthy after {timeout:.0f} s: {', '.join(waiting)}")
            if waiting:
                time.sleep(2)

    def wait_exit(self, service: str) -> None:
        code = run(["podman", "wait", self.container(service)], env=self.env).stdout.strip()
        if code != "0":
            raise StackError(f"{service} exited {code}: {self.tail(service)}")

    def tail(self, service: str, lines: int = 40) -> str:
        done = subprocess.run(
            ["podman", "logs", "--tail", str(lines), self.container(service)],
            env=self.env,
            capture_output=True,
            text=True,
        )
        return "\n" + done.stdout + done.stderr

    def save_logs(self, folder: Path) -> None:
        for service in self.services:
            try:
                container = self.container(service)
            except StackError:
                continue
            with (folder / f"{service}.log").open("w") as out:
                subprocess.run(["podman", "logs", container], env=self.env, stdout=out, stderr=subprocess.STDOUT)


def bring_up_steps(services: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """The compose file's services in podman-compose's order: those with no dependencies, the one-shot jobs others
    wait for (``service_completed_successfully``), then the rest (services behind a profile stay off)."""
    active = {name: spec for name, spec in services.items() if not spec.get("profiles")}
    jobs = {
        dependency
        for spec in active.values()
        for dependency, rule in (spec.get("depends_on") or {}).items()
        if rule.get("condition") == "service_completed_successfully"
    }
    first = [name for name, spec in active.items() if not spec.get("depends_on") and name not in jobs]
    rest = [name for name in active if name not in jobs and name not in first]
    return first, sorted(jobs), rest


def worker_hostnames(services: dict[str, Any]) -> list[str]:
    return [spec["hostname"] for spec in services.values() if spec.get("command") == "celery worker"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- Airflow's REST API and the emulator ----------------------------------------------------------------------------


@dataclass
class AirflowApi:
    url: str
    session: requests.Session = field(default_factory=requests.Session)

    def login(self) -> None:
        response = self.session.post(f"{self.url}/auth/token", json=LOGIN, timeout=30)
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def get(self, path: str) -> Any:
        response = self.session.get(f"{self.url}/api/v2/{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def wait_for_dag(self, dag_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.session.get(f"{self.url}/api/v2/dags/{dag_id}", timeout=30).status_code != 200:
            if time.monotonic() > deadline:
                errors = self.get("importErrors")["import_errors"]
                raise StackError(f"the DAG {dag_id} did not appear in {timeout:.0f} s; import errors: {errors}")
            time.sleep(2)

    def trigger(self, pipeline: Pipeline) -> str:
        dags = f"{self.url}/api/v2/dags/{pipeline.dag_id}"
        self.session.patch(dags, json={"is_paused": False}, timeout=30).raise_for_status()
        response = self.session.post(f"{dags}/dagRuns", json={"logical_date": None, "conf": pipeline.conf}, timeout=30)
        response.raise_for_status()
        return str(response.json()["dag_run_id"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float, progress: Callable[[str], None]) -> str:
        deadline, last = time.monotonic() + timeout, ""
        while True:
            state = str(self.get(f"dags/{dag_id}/dagRuns/{run_id}")["state"])
            if state != last:
                progress(f"run {run_id}: {state}")
                last = state
            if state in ("success", "failed"):
                return state
            if time.monotonic() > deadline:
                raise StackError(f"the run {run_id} is still {state} after {timeout:.0f} s")
            time.sleep(2)


def on_host(data_dir: Path, path: str) -> Path:
    """A container path below /data, on the host folder mounted there."""
    return data_dir / Path(path).relative_to(DATA)


def files_under(folder: Path, pattern: str = "*") -> int:
    return sum(1 for path in folder.rglob(pattern) if path.is_file())


def check_accounting(pipeline: Pipeline, data_dir: Path) -> tuple[int, list[str]]:
    """The instances the emulator must hold (the de-identified files, counted on disk), and what does not add up:
    every input de-identified or quarantined, nothing taken out by the validation unaccounted for."""
    inputs = files_under(on_host(data_dir, pipeline.inputs))
    outputs = files_under(on_host(data_dir, pipeline.outputs), "*.dcm")
    report_file = on_host(data_dir, pipeline.report)
    if not report_file.is_file():
        return outputs, [f"the pipeline wrote no report at {pipeline.report}"]
    report = json.loads(report_file.read_text())
    counts, validation = report["deidentification"]["counts"], report["validation"]
    problems = []
    if counts["inputs"] != inputs or counts["deidentified"] + counts["quarantined"] != inputs:
        problems.append(f"{inputs} input files, the de-identification accounts for {counts}")
    if counts["deidentified"] != outputs:
        problems.append(f"{outputs} de-identified files on disk, the report says {counts['deidentified']}")
    if counts["quarantined"] == 0:
        problems.append("the sample set's bad files were not quarantined")
    return outputs - validation["quarantined"], problems


def check_outcome(
    pipeline: Pipeline,
    state: str,
    instances: list[dict[str, Any]],
    stats: dict[str, Any],
    workers: Sequence[str],
    expected: int,
) -> list[str]:
    """What went wrong, from the run's state, its task instances and the emulator's counters (empty: all good)."""
    problems = []
    if state != "success":
        failed = sorted({ti["task_id"] for ti in instances if ti["state"] not in ("success", "skipped")})
        problems.append(f"the run ended {state}; tasks not successful: {failed}")
    stores = [ti for ti in instances if ti["task_id"] in pipeline.store_tasks]
    if len(stores) < 2 or any(ti["map_index"] < 0 for ti in stores):
        problems.append(f"expected mapped store tasks, found {[(ti['task_id'], ti['map_index']) for ti in stores]}")
    if bad := [f"{ti['task_id']}[{ti['map_index']}]: {ti['state']}" for ti in stores if ti["state"] != "success"]:
        problems.append(f"store tasks not successful: {bad}")
    ran_on = {str(ti["hostname"] or "").split(".")[0] for ti in stores}
    if missing := sorted(set(workers) - ran_on):
        problems.append(f"no store task ran on {missing} (they ran on {sorted(ran_on)})")
    counts = stats.get("instances", {})
    if counts.get("stored") != expected or stats.get("index", {}).get("instances") != expected:
        problems.append(f"the emulator stored {counts.get('stored')} instances, expected {expected}: {stats}")
    if counts.get("received") != counts.get("stored") or counts.get("failed"):
        problems.append(f"instances were re-sent or failed: {counts}")
    return problems


# --- the test --------------------------------------------------------------------------------------------------------


def compose_test(keep: bool) -> int:
    timer = Timer()
    shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir()
    log = OUTPUT / "commands.log"
    say(f"log of every command: {log}")
    with timer.phase("tools"):
        podman_compose = install_tools(log)
        env = configure_podman()
    airflow_version = default_airflow_version()
    if airflow_version != version("apache-airflow"):
        say(f"note: the tests' venv has Airflow {version('apache-airflow')}; the images get {airflow_version}")
    airflow_image = f"localhost/hi-stow-airflow-base:{airflow_version}"
    data_dir = Path(tempfile.mkdtemp(prefix="data-", dir=CACHE))
    api_port, emulator_port = free_port(), free_port()
    env.update(
        AIRFLOW_IMAGE=airflow_image,
        HI_STOW_IMAGE=PACKAGE_IMAGE,
        HI_STOW_DATA_DIR=str(data_dir),
        AIRFLOW_UID="50000",
        AIRFLOW_API_PORT=f"127.0.0.1:{api_port}",
        HI_STOW_EMULATOR_PORT=f"127.0.0.1:{emulator_port}",
    )
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    stack = Stack(podman_compose, env, log, services)
    first, jobs, rest = bring_up_steps(services)
    workers = worker_hostnames(services)
    try:
        stack.compose("down", "--volumes")  # what an interrupted run left, if anything
        with timer.phase("base images"):
            build_images(env, log, airflow_image, airflow_version)
        with timer.phase("package image"):
            say(f"building {PACKAGE_IMAGE} from ./Dockerfile on {airflow_image}")
            stack.compose("build", jobs[0])
            run(["podman", "image", "prune", "-f"], log=log, env=env)  # layers of earlier builds
        with timer.phase("first services"):
            say(f"starting {', '.join(first)}")
            stack.compose("up", "-d", "--no-deps", *first)
            stack.wait_healthy(first, timeout=120)
        with timer.phase("init job"):
            for job in jobs:
                say(f"running {job}")
                stack.compose("up", "-d", "--no-deps", job)
                stack.wait_exit(job)
        with timer.phase("Airflow services"):
            say(f"starting {', '.join(rest)}")
            stack.compose("up", "-d", "--no-deps", *rest)
            stack.wait_healthy(rest, timeout=240)
        with timer.phase("pipeline"):
            api = AirflowApi(f"http://127.0.0.1:{api_port}")
            api.login()
            api.wait_for_dag(PIPELINE.dag_id, timeout=120)
            run_id = api.trigger(PIPELINE)
            say(f"triggered {PIPELINE.dag_id} with {json.dumps(PIPELINE.conf)}")
            state = api.wait_for_run(PIPELINE.dag_id, run_id, timeout=600, progress=say)
        instances = api.get(f"dags/{PIPELINE.dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]
        stats = requests.get(f"http://127.0.0.1:{emulator_port}/_emulator/stats", timeout=30).json()
        (OUTPUT / "task-instances.json").write_text(json.dumps(instances, indent=1))
        (OUTPUT / "emulator-stats.json").write_text(json.dumps(stats, indent=1))
        expected, problems = check_accounting(PIPELINE, data_dir)
        problems += check_outcome(PIPELINE, state, instances, stats, workers, expected)
        stores = [ti for ti in instances if ti["task_id"] in PIPELINE.store_tasks]
        on_workers = {worker: sum(str(ti["hostname"]).startswith(worker) for ti in stores) for worker in workers}
        say(f"run {state}; emulator: {stats.get('instances')}; store tasks per worker: {on_workers}")
        if problems:
            raise StackError("; ".join(problems))
        say(
            f"PASSED: every input de-identified or quarantined, {expected} instances stored once, store tasks on "
            f"{', '.join(workers)}"
        )
        return 0
    except (StackError, requests.RequestException) as exc:
        say(f"FAILED: {exc}")
        return 1
    finally:
        stack.save_logs(OUTPUT)
        if keep:
            say(f"left running (--keep): UI http://127.0.0.1:{api_port} ({LOGIN['username']}/{LOGIN['password']})")
            say(f"tear down: {sys.executable} {Path(__file__).relative_to(REPO)} --down")
        else:
            with timer.phase("teardown"):
                tear_down(stack, data_dir)
        say(f"{timer.summary()}; container logs in {OUTPUT}")


def tear_down(stack: Stack, data_dir: Path | None = None) -> None:
    try:
        stack.compose("down", "--volumes")
    except StackError as exc:
        say(f"teardown: {exc}")
    for folder in [data_dir] if data_dir else CACHE.glob("data-*"):
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the stack running at the end (for a look)")
    parser.add_argument("--down", action="store_true", help="only tear down what --keep left running")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # run the teardown on SIGTERM too
    if args.down:
        OUTPUT.mkdir(exist_ok=True)
        log = OUTPUT / "commands.log"
        tear_down(Stack(install_tools(log), configure_podman(), log, {}))
        say(f"stopped and removed the {PROJECT} stack and its volumes")
        return 0
    return compose_test(args.keep)


if __name__ == "__main__":
    sys.exit(main())
