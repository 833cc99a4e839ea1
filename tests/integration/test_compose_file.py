"""docker-compose.yaml is valid and in step with the code, checked without running it (``make compose-test`` runs it):
Debian's docker-compose (v1) validates the file, and its resolved form (anchors merged, defaults filled in) is
checked against the DAGs, the package's connection and configuration names, the emulator's command line and
compose/compose_test.py, which brings the stack up under podman."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from airflow_hi_stow import get_provider_info
from airflow_hi_stow.deid.keys import DeidentificationKey
from airflow_hi_stow.emulator.cli import ACCESS_KEY_ENV, SECRET_KEY_ENV, add_arguments

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
OVERRIDE_FILE = ROOT / "compose" / "podman" / "override.yaml"
EMULATOR = "healthimaging-emulator"
CONNECTIONS = ("aws_healthimaging", "hi_stow_deid_key")  # the ids issue 19 names for the sample DAGs

pytestmark = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (Debian package 'docker-compose'; .ci/run installs it)",
)


def docker_compose(*args: str, files: tuple[Path, ...] = (COMPOSE_FILE,)) -> subprocess.CompletedProcess[str]:
    """docker-compose with the defaults of the compose file only (no variables of the caller's environment)."""
    options = [arg for path in files for arg in ("-f", str(path))]
    return subprocess.run(
        ["docker-compose", "--project-directory", str(ROOT), *options, *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(ROOT)},
        timeout=60,
    )


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    done = docker_compose("config")
    assert done.returncode == 0, done.stderr
    return dict(yaml.safe_load(done.stdout)["services"])


@pytest.fixture(scope="module")
def airflow_services(services: dict[str, Any]) -> dict[str, Any]:
    """Services of the Airflow image that run Airflow (the emulator shares the image, not the settings)."""
    return {name: spec for name, spec in services.items() if "AIRFLOW__CORE__EXECUTOR" in spec.get("environment", {})}


@pytest.fixture(scope="module")
def compose_test() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compose_test", ROOT / "compose" / "compose_test.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    from tests.support.airflow_compat import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return dict(bag.dags)


@pytest.mark.parametrize(
    "files", [(COMPOSE_FILE,), (COMPOSE_FILE, OVERRIDE_FILE)], ids=["alone", "with-podman-override"]
)
def test_docker_compose_config_accepts_the_file(files: tuple[Path, ...]) -> None:
    done = docker_compose("config", "-q", files=files)
    assert done.returncode == 0, done.stderr


def test_docker_compose_config_refuses_an_undefined_service(tmp_path: Path) -> None:
    """The check above can fail: the same file with a dependency on a service that does not exist is refused."""
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(COMPOSE_FILE.read_text().replace("      airflow-init:\n", "      airflow-inti:\n", 1))
    done = docker_compose("config", "-q", files=(broken,))
    assert done.returncode != 0
    assert "airflow-inti" in done.stderr


def test_the_stack_has_what_the_issue_lists(services: dict[str, Any], airflow_services: dict[str, Any]) -> None:
    commands = {name: spec.get("command") for name, spec in airflow_services.items()}
    for command in ("api-server", "scheduler", "dag-processor", "triggerer"):
        assert command in commands.values(), f"no service runs `airflow {command}`"
    workers = [spec["hostname"] for spec in airflow_services.values() if spec.get("command") == "celery worker"]
    assert len(set(workers)) == len(workers) >= 2, "two Celery workers, each with a hostname of its own"
    assert {"postgres", "redis", EMULATOR, "airflow-init"} <= services.keys()
    for spec in (*airflow_services.values(), services[EMULATOR]):
        assert spec["build"]["args"]["AIRFLOW_IMAGE"] == services["airflow-init"]["build"]["args"]["AIRFLOW_IMAGE"]
        assert spec["image"] == services["airflow-init"]["image"], "one image for every service built from it"


def test_the_dockerfile_default_base_is_the_compose_default(services: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    found = re.search(r"^ARG AIRFLOW_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert found, "Dockerfile: no ARG AIRFLOW_IMAGE=<default>"
    assert found.group(1) == services["airflow-init"]["build"]["args"]["AIRFLOW_IMAGE"]
    assert re.fullmatch(r"apache/airflow:3\.\d+\.\d+", found.group(1)), "the official Airflow 3 image by default"


def test_every_airflow_service_has_the_connections_and_settings(airflow_services: dict[str, Any]) -> None:
    option = get_provider_info()["config"]["hi_stow"]["options"]
    assert "manifest_location" in option
    wanted = {f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id in CONNECTIONS} | {"AIRFLOW__HI_STOW__MANIFEST_LOCATION"}
    for name, spec in airflow_services.items():
        assert wanted <= spec["environment"].keys(), f"{name} lacks {sorted(wanted - spec['environment'].keys())}"
    environments = [spec["environment"] for spec in airflow_services.values()]
    for variable in wanted:
        assert len({environment[variable] for environment in environments}) == 1, f"{variable} differs"
    manifests = environments[0]["AIRFLOW__HI_STOW__MANIFEST_LOCATION"]
    assert under(manifests, data_mounts(airflow_services)), "manifests on a folder every worker shares (resumes)"


def test_the_aws_connection_reaches_the_emulator_as_it_runs(services: dict[str, Any]) -> None:
    emulator = services[EMULATOR]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert emulator["entrypoint"] == ["hi-stow"]
    assert emulator["command"][0] == "emulator"
    args = parser.parse_args(emulator["command"][1:])
    connection = json.loads(services["airflow-init"]["environment"]["AIRFLOW_CONN_AWS_HEALTHIMAGING"])
    extra = connection["extra"]
    assert connection["conn_type"] == "aws"
    assert extra["datastore_id"] == args.datastore_id
    assert extra["region_name"] == args.region
    endpoint = urlsplit(extra["endpoint_url"])
    assert (endpoint.hostname, endpoint.port) == (EMULATOR, args.port)
    assert args.host == "0.0.0.0"  # reachable from the other containers
    assert connection["login"] == emulator["environment"][ACCESS_KEY_ENV]
    assert connection["password"] == emulator["environment"][SECRET_KEY_ENV]


def test_the_deidentification_key_is_usable(services: dict[str, Any]) -> None:
    connection = json.loads(services["airflow-init"]["environment"]["AIRFLOW_CONN_HI_STOW_DEID_KEY"])
    DeidentificationKey(connection["password"])  # raises for a missing or short key


def test_urls_in_the_settings_name_services_of_the_file(
    services: dict[str, Any], airflow_services: dict[str, Any]
) -> None:
    """The database, broker, execution API and emulator URLs (connections' JSON included) name real services."""
    urls = {
        url
        for spec in airflow_services.values()
        for value in spec["environment"].values()
        for url in re.findall(r"[a-z][a-z0-9+]*://[^\s\"']+", str(value))
    }
    assert len(urls) >= 4
    assert {url: urlsplit(url).hostname for url in urls if urlsplit(url).hostname not in services} == {}


def test_the_dags_find_their_connections_pools_and_folders(
    dags: dict[str, Any], services: dict[str, Any], airflow_services: dict[str, Any]
) -> None:
    """Every connection id and pool a sample DAG's task names exists in the stack, and every folder a DAG's params
    default to lies on the folder the workers mount (so that a run triggered from the UI as it is works)."""
    environment = services["airflow-init"]["environment"]
    created_pools = set(re.findall(r"airflow pools set (\S+)", " ".join(services["airflow-init"]["command"])))
    assert "healthimaging" in created_pools
    mounted = data_mounts(airflow_services)
    for dag in dags.values():
        for task in dag.tasks:
            fields = {**vars(task), **(getattr(task, "partial_kwargs", None) or {})}
            for conn_id in {value for key, value in fields.items() if key.endswith("conn_id") and value}:
                assert f"AIRFLOW_CONN_{conn_id.upper()}" in environment, f"{dag.dag_id}.{task.task_id}: {conn_id}"
            assert task.pool in created_pools | {"default_pool"}, f"{dag.dag_id}.{task.task_id}: pool {task.pool}"
        for name in dag.params:
            default = dag.params[name]
            if isinstance(default, str) and default.startswith("/"):
                assert under(default, mounted), f"{dag.dag_id} param {name} defaults to {default}, not under {mounted}"


def test_the_compose_test_triggers_a_dag_of_dags_folder(
    compose_test: ModuleType, dags: dict[str, Any], services: dict[str, Any], airflow_services: dict[str, Any]
) -> None:
    pipeline = compose_test.PIPELINE
    assert pipeline.dag_id in dags, f"compose/compose_test.py triggers {pipeline.dag_id}, which dags/ lacks"
    dag = dags[pipeline.dag_id]
    assert set(pipeline.conf) <= set(dag.params), f"conf keys the DAG has no params for: {set(pipeline.conf)}"
    assert set(pipeline.store_tasks) <= set(dag.task_ids)
    mounted = data_mounts(airflow_services)
    paths = [value for value in pipeline.conf.values() if isinstance(value, str) and value.startswith("/")]
    for path in [*paths, pipeline.inputs, pipeline.outputs, pipeline.report]:
        assert under(path, mounted), f"{path} is not on the folder the workers mount ({mounted})"
    assert pipeline.conf["source"] == pipeline.inputs
    assert pipeline.conf["destination"] == pipeline.outputs
    assert pipeline.conf["report_path"] == pipeline.report
    init = " ".join(services["airflow-init"]["command"])
    generate = re.search(r"python -m airflow_hi_stow\.samples ((?:--[\w-]+ )*)(\S+)", init)
    assert generate is not None, "the init job generates the samples"
    assert generate[2] == compose_test.SAMPLES
    assert {"--plant-phi", "--bad-files"} <= set(generate[1].split()), "the sample set has PHI and bad files in it"


def test_the_compose_test_brings_up_every_service(compose_test: ModuleType, services: dict[str, Any]) -> None:
    first, jobs, rest = compose_test.bring_up_steps(services)
    active = {name for name, spec in services.items() if not spec.get("profiles")}
    assert sorted([*first, *jobs, *rest]) == sorted(active)
    assert jobs == ["airflow-init"]
    assert set(compose_test.worker_hostnames(services)) == {
        spec["hostname"] for spec in services.values() if spec.get("command") == "celery worker"
    }
    override = yaml.safe_load(OVERRIDE_FILE.read_text())["services"]
    assert {name: spec["image"] for name, spec in override.items()} == {
        "postgres": compose_test.POSTGRES_IMAGE,
        "redis": compose_test.REDIS_IMAGE,
    }


def data_mounts(airflow_services: dict[str, Any]) -> list[str]:
    """Container folders every Airflow service mounts from the same source (a host folder or a named volume)."""
    mounts = [
        {tuple(volume.split(":")[:2]) for volume in spec.get("volumes", [])} for spec in airflow_services.values()
    ]
    shared = set.intersection(*mounts)
    return sorted(target for _, target in shared if target != "/opt/airflow/dags")


def under(path: str, folders: list[str]) -> bool:
    return any(PurePosixPath(path).is_relative_to(folder) for folder in folders)
