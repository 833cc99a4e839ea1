"""Parallel uploads: every instance indexed once, nothing lost, and all of it still there after a crash."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_hi_stow.core.results import StoreResult
from airflow_hi_stow.engine.importer import store_files
from airflow_hi_stow.samples import SampleSet, generate_dataset
from airflow_hi_stow.testing import RunningEmulator
from tests.emulator.conftest import signed_get, stored_sop_uids, stow_client

THREADS = 8


@pytest.fixture(scope="module")
def five_hundred(tmp_path_factory: pytest.TempPathFactory) -> SampleSet:
    sample = generate_dataset(
        tmp_path_factory.mktemp("many") / "set",
        patients=5,
        studies_per_patient=(1, 1),
        series_per_study=(2, 2),
        instances_per_series=(50, 50),
        redeliver_one_study=False,
    )
    assert len(sample.instances) == 500
    return sample


def test_eight_threads_storing_500_instances_index_each_once_even_after_a_crash(
    healthimaging_emulator: RunningEmulator, five_hundred: SampleSet
) -> None:
    emulator = healthimaging_emulator
    client = stow_client(emulator)
    paths = [item.path for item in five_hundred.instances]
    again = paths[::10]  # 50 instances sent a second time, by other threads, while the first copies arrive
    with ThreadPoolExecutor(THREADS) as pool:
        results: list[StoreResult] = list(pool.map(lambda path: store_files(client, [path]), paths + again))
    assert all(result.all_stored for result in results)
    assert {request.status_code for result in results for request in result.requests} == {200}
    stats = emulator.stats()
    assert stats["instances"] == {"received": 550, "stored": 550, "failed": 0}

    def everything_is_there_once() -> None:
        expected = {item.sop_instance_uid for item in five_hundred.instances}
        assert emulator.stats()["index"] == {"instances": 500, "image_sets": 10, "datastores": 1}
        assert stored_sop_uids(emulator) == dict.fromkeys(expected, True)
        listed = [
            item["00080018"]["Value"][0] for item in signed_get(emulator, f"{emulator.dicomweb_url}/instances").json()
        ]
        assert sorted(listed) == sorted(expected)

    everything_is_there_once()
    emulator.kill()
    emulator.start()
    everything_is_there_once()
    # every request made one version of the image set it went to (the first made version 1)
    assert sum(item["version"] for item in emulator.image_sets()) == 550
