"""The Airflow UI for real: ``airflow standalone`` with the emulator (as ``make airflow`` runs it) and headless
Chromium (Debian ``chromium`` and ``chromium-driver``, which ``.ci/run`` installs) driven through Selenium.

A user triggers ``hi_stow_local_pipeline`` from the UI, waits for the run, opens a store task, follows its extra link
to the data store, clears the task (the "retry from the UI" of the design card) and sees the run end green again, the
retry having sent nothing already confirmed. Screenshots of the run, the store task and the report are saved under
``ui-artifacts/`` (test artifacts).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_hi_stow.demo import write_demo_set
from airflow_hi_stow.local_airflow import LocalAirflow, airflow_environment, local_airflow
from airflow_hi_stow.testing import RunningEmulator, start_emulator
from tests.support.orthanc import free_port

pytestmark = pytest.mark.ui
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "ui-artifacts"
DAG_ID = "hi_stow_local_pipeline"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1500,1000",
)  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalAirflow, RunningEmulator, Path]]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            "Chromium is not installed (Debian packages 'chromium' and 'chromium-driver'; .ci/run installs them)"
        )
    root = tmp_path_factory.mktemp("ui")
    write_demo_set(root / "data" / "incoming", patients=2)
    with start_emulator(root / "emulator") as emulator:
        environment = airflow_environment(
            root / "airflow", ROOT / "dags", emulator, root / "manifests", HI_STOW_SAMPLE_DATA=str(root / "data")
        )
        with local_airflow(environment, free_port(), root / "airflow-standalone.log") as airflow:
            yield airflow, emulator, root


@pytest.fixture(scope="module")
def browser(stack: tuple[LocalAirflow, RunningEmulator, Path]) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    airflow, _, root = stack
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={root / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(15)
    try:
        driver.get(f"{airflow.url}/auth/login")
        driver.find_element(By.NAME, "username").send_keys("admin")
        driver.find_element(By.NAME, "password").send_keys(airflow.password + Keys.ENTER)
        wait_until(lambda: "/auth/login" not in driver.current_url, "the login", 60)
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        ARTIFACTS.mkdir()
        yield driver
    finally:
        driver.quit()


def wait_until(condition: Callable[[], Any], what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


def runs(airflow: LocalAirflow) -> list[dict[str, Any]]:
    return list(airflow.api("GET", f"/dags/{DAG_ID}/dagRuns")["dag_runs"])  # type: ignore[index]


def run_state(airflow: LocalAirflow, run_id: str) -> str:
    return str(airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"])  # type: ignore[index]


def task_instance(airflow: LocalAirflow, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}" + (f"/{map_index}" if map_index >= 0 else "")
    return airflow.api("GET", path)  # type: ignore[return-value]


def store_summary(airflow: LocalAirflow, run_id: str, map_index: int) -> dict[str, Any]:
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/store_study/xcomEntries/return_value"
    entry = airflow.api("GET", f"{path}?map_index={map_index}&deserialize=true")
    return entry["value"]  # type: ignore[index]


def test_trigger_open_clear_and_retry_from_the_ui(
    stack: tuple[LocalAirflow, RunningEmulator, Path], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    airflow, emulator, _ = stack
    wait_until(lambda: airflow.api("GET", f"/dags/{DAG_ID}"), "the DAG to be parsed", 120)

    # trigger from the DAG's page, with the params the trigger form shows (the sample data's defaults)
    browser.get(f"{airflow.url}/dags/{DAG_ID}")
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Trigger Dag']").click()
    wait_until(lambda: browser.find_elements(By.XPATH, "//*[contains(text(), 'Run Parameters')]"), "the form", 30)
    browser.find_elements(By.XPATH, "//button[normalize-space()='Trigger']")[-1].click()
    (run,) = wait_until(lambda: runs(airflow), "the triggered run", 60)
    run_id = run["dag_run_id"]
    assert wait_until(lambda: run_state(airflow, run_id) in ("success", "failed") and run_state(airflow, run_id),
                      "the run", 600) == "success"  # fmt: skip
    browser.get(f"{airflow.url}/dags/{DAG_ID}/runs/{run_id}")
    wait_until(lambda: browser.find_elements(By.XPATH, "//*[contains(text(), 'store_study')]"), "the grid", 30)
    browser.save_screenshot(str(ARTIFACTS / "run.png"))

    # the report task's result
    browser.get(f"{airflow.url}/dags/{DAG_ID}/runs/{run_id}/tasks/report/xcom")
    time.sleep(3)
    browser.save_screenshot(str(ARTIFACTS / "report.png"))

    # a store task, its extra link to the data store, then clear it as a user retries from the UI
    first = store_summary(airflow, run_id, 0)
    received = emulator.stats()["instances"]["received"]
    task_page = f"{airflow.url}/dags/{DAG_ID}/runs/{run_id}/tasks/store_study/mapped/0"
    browser.get(f"{task_page}/details")
    link = browser.find_element(By.LINK_TEXT, "HealthImaging data store")
    href = link.get_attribute("href")
    assert href == f"{emulator.url}/_emulator/datastores/{emulator.datastore_id}"
    browser.save_screenshot(str(ARTIFACTS / "store-task.png"))
    browser.get(href)
    assert emulator.datastore_id in browser.find_element(By.ID, "datastore").text
    assert "primary" in browser.find_element(By.ID, "counts").text
    browser.save_screenshot(str(ARTIFACTS / "data-store.png"))

    browser.get(task_page)
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Press shift+c to clear']").click()
    browser.find_element(By.XPATH, "//button[normalize-space()='Confirm']").click()
    wait_until(lambda: task_instance(airflow, run_id, "store_study", 0)["try_number"] == 2, "the cleared try", 60)
    assert wait_until(lambda: run_state(airflow, run_id) in ("success", "failed") and run_state(airflow, run_id),
                      "the run after the clear", 300) == "success"  # fmt: skip
    assert task_instance(airflow, run_id, "store_study", 0)["state"] == "success"
    again = store_summary(airflow, run_id, 0)
    assert again["counts"]["stored"] == first["counts"]["stored"]
    assert again["resumed"] == first["counts"]["stored"]  # every instance was confirmed by the first try
    assert emulator.stats()["instances"]["received"] == received  # so nothing was sent again
    browser.get(task_page)
    time.sleep(3)
    browser.save_screenshot(str(ARTIFACTS / "store-task-after-clear.png"))
