"""Partitioning a source into shards for task mapping: whole studies per shard, balanced bytes, nothing dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_hi_stow.engine.partition import partition_source
from airflow_hi_stow.samples import SampleSet, generate_dataset
from tests.support.s3 import MotoS3


@pytest.fixture
def sample(tmp_path: Path) -> SampleSet:
    return generate_dataset(
        tmp_path / "set",
        patients=4,
        studies_per_patient=(1, 2),
        series_per_study=(1, 2),
        instances_per_series=(2, 6),
        redeliver_one_study=False,
    )


def study_of(sample: SampleSet) -> dict[str, str]:
    return {str(i.path): i.study_instance_uid for i in sample.instances}


def test_shards_hold_whole_studies_and_every_file(sample: SampleSet, tmp_path: Path) -> None:
    (sample.root / "notes.txt").write_text("not DICOM")
    shards = partition_source([str(sample.root), str(tmp_path / "missing")], max_shards=3)
    assert len(shards) == 3
    listed = [name for shard in shards for name in shard]
    assert sorted(listed) == sorted([*study_of(sample), str(sample.root / "notes.txt"), str(tmp_path / "missing")])
    studies = study_of(sample)
    for study in sample.study_uids:
        assert sum(any(studies.get(name) == study for name in shard) for shard in shards) == 1
    sizes = {str(i.path): i.size for i in sample.instances}
    loads = [sum(sizes.get(name, 0) for name in shard) for shard in shards]
    largest_study = max(sum(i.size for i in sample.instances if i.study_instance_uid == s) for s in sample.study_uids)
    assert max(loads) - min(loads) <= largest_study


def test_shard_bytes_and_directory_grouping(sample: SampleSet) -> None:
    one = partition_source(str(sample.root), max_shards=10, shard_bytes=sample.total_bytes * 2)
    assert len(one) == 1
    by_folder = partition_source(str(sample.root), max_shards=100, group_by="directory")
    assert len(by_folder) == len(sample.series_uids)  # the generator writes one folder per series
    with pytest.raises(ValueError, match="group_by"):
        partition_source(str(sample.root), group_by="patient")  # type: ignore[arg-type]


def test_s3_sources_are_partitioned_by_study(sample: SampleSet, moto_s3: MotoS3) -> None:
    uris = moto_s3.upload_tree(sample.root, "in")
    shards = partition_source(f"s3://{moto_s3.bucket}/in/", max_shards=2, s3_client=moto_s3.client)
    assert len(shards) == 2
    assert sorted(name for shard in shards for name in shard) == sorted(uris)
    study = {f"s3://{moto_s3.bucket}/in/{i.path.relative_to(sample.root).as_posix()}": i.study_instance_uid
             for i in sample.instances}  # fmt: skip
    assert not {study[u] for u in shards[0]} & {study[u] for u in shards[1]}
