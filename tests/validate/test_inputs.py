"""A run over the package's sources, as StoreDicomOperator takes them: entries that name nothing are counted and
reported; S3 objects (which do not pickle) are checked in worker processes, quarantined to S3 and moved; a retry
after a fix takes a file that passes now out of the quarantine; a retry of a move accounts for what the earlier try
moved, whichever way the source names it."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from airflow_hi_stow.sources.resolve import FileList, resolve_sources, write_file_list
from airflow_hi_stow.storage.locations import LocalLocation, open_location
from airflow_hi_stow.validate import remove_input, validate_files
from airflow_hi_stow.validate.inputs import refuse_overlap
from airflow_hi_stow.validate.quarantine import REASON_SUFFIX, quarantine_name
from tests.support.s3 import MotoS3
from tests.validate.dicom_files import ct, p10_bytes, write
from tests.validate.test_runner import BAD, small_set, split


def test_entries_that_name_nothing_are_quarantined_with_their_reason(tmp_path: Path) -> None:
    root = small_set(tmp_path / "in")
    listing = tmp_path / "broken.jsonl"
    listing.write_text("[not json\n")
    source = [str(root), str(tmp_path / "gone.dcm"), str(tmp_path / "none-*.dcm"), {"manifest": str(listing)}]
    result = validate_files(
        resolve_sources(source), quarantine=LocalLocation(tmp_path / "q"), output=LocalLocation(tmp_path / "o")
    )
    reasons = {o.source: [(f.check, f.message) for f in o.findings] for o in result.quarantined}
    assert reasons[str(tmp_path / "gone.dcm")] == [("container.readable", "cannot be read (no such file or directory)")]
    assert reasons[str(tmp_path / "none-*.dcm")] == [
        ("container.readable", "cannot be read (no file matches the pattern)")
    ]
    ((check, message),) = reasons[str(listing)]
    assert (check, message.startswith("cannot be read (not a file list")) == ("container.readable", True)
    summary = result.summary()
    assert summary["inputs"] == 7 + 3 == summary["good"] + summary["quarantined"]
    for entry in (tmp_path / "gone.dcm", tmp_path / "none-*.dcm", listing):
        reason = json.loads((tmp_path / "q" / (quarantine_name(str(entry)) + REASON_SUFFIX)).read_text())
        assert (reason["source"], reason["quarantined_as"]) == (str(entry), None)
        assert reason["copy_error"].startswith("cannot read the source (")


def test_a_file_fixed_between_two_tries_is_taken_out_of_the_quarantine(tmp_path: Path) -> None:
    root = small_set(tmp_path / "in")
    quarantine = tmp_path / "q"

    def again() -> tuple[list[str], list[str]]:
        return split(
            validate_files(
                resolve_sources([root]), quarantine=LocalLocation(quarantine), output=LocalLocation(tmp_path / "o")
            )
        )

    assert set(again()[1]) == BAD
    (root / "cut.dcm").write_bytes(p10_bytes(ct(number=9)))  # the sender re-sent it whole
    good, quarantined = again()
    assert "cut.dcm" in good
    assert set(quarantined) == BAD - {"cut.dcm"}
    assert sorted(p.name for p in quarantine.iterdir()) == sorted(
        name
        for source in quarantined
        for name in (quarantine_name(str(root / source)), quarantine_name(str(root / source)) + REASON_SUFFIX)
    )
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["summary"]["taken_out_of_quarantine"] == 1


def test_a_retried_move_accounts_for_what_it_moved_whichever_way_the_source_names_it(tmp_path: Path) -> None:
    """A directory whose every file was moved names nothing on the retry; a file list names files that are gone:
    neither adds an input, and the earlier try's reason files stay as they were."""
    folder = tmp_path / "all-bad"
    folder.mkdir()
    (folder / "a.dcm").write_text("not an image")
    (folder / "b.dcm").write_bytes(b"")
    root = small_set(tmp_path / "in")
    listing = tmp_path / "list.jsonl"
    listing.write_bytes(write_file_list(sorted(str(p) for p in root.iterdir())))
    source = [str(folder), FileList(str(listing)).to_source()]

    def move() -> tuple[list[str], list[str], int]:
        result = validate_files(
            resolve_sources(source),
            quarantine=LocalLocation(tmp_path / "q"),
            output=LocalLocation(tmp_path / "o"),
            remove_source=remove_input,
        )
        return *split(result), result.summary()["quarantined_earlier"]

    first = move()
    assert not list(folder.iterdir())
    assert set(first[1]) == BAD | {"a.dcm", "b.dcm"}
    before = {p.name: p.read_bytes() for p in (tmp_path / "q").iterdir()}
    assert move() == (first[0], first[1], len(first[1]))
    assert {p.name: p.read_bytes() for p in (tmp_path / "q").iterdir()} == before


def test_s3_objects_are_checked_in_worker_processes_quarantined_to_s3_and_moved(
    moto_s3: MotoS3, tmp_path: Path
) -> None:
    root = small_set(tmp_path / "in")
    write(ct(number=5), root / "deeper" / "ok-5.dcm")
    uris = moto_s3.upload_tree(root, "incoming")
    bucket = moto_s3.bucket
    quarantine = open_location(f"s3://{bucket}/quarantine", ["run=1"], moto_s3.client)
    output = open_location(f"s3://{bucket}/records", ["run=1"], moto_s3.client)

    def run() -> tuple[list[str], list[str], int]:
        result = validate_files(
            resolve_sources(f"s3://{bucket}/incoming/", moto_s3.client),
            quarantine=quarantine,
            output=output,
            remove_source=remove_input,
            workers=2,
        )
        return *split(result), result.summary()["quarantined_earlier"]

    local = split(
        validate_files(
            resolve_sources([root]), quarantine=LocalLocation(tmp_path / "q"), output=LocalLocation(tmp_path / "o")
        )
    )
    first = run()
    assert first[:2] == local
    client = moto_s3.client()
    left = {item["Key"] for item in client.list_objects_v2(Bucket=bucket, Prefix="incoming/")["Contents"]}
    assert left == {f"incoming/{name}" for name in ("ok-1.dcm", "ok-2.dcm", "ok-3.dcm", "ok-4.dcm", "deeper/ok-5.dcm")}
    for uri in uris:
        if Path(uri).name in BAD:
            name = quarantine_name(uri)
            reason = json.loads(quarantine.get_bytes(name + REASON_SUFFIX) or b"{}")
            assert reason["quarantined_as"] == f"s3://{bucket}/quarantine/run=1/{name}"
            assert quarantine.get_bytes(name) == (root / Path(uri).name).read_bytes()
    good = [json.loads(line)["source"] for line in (output.get_bytes("good.jsonl") or b"").decode().splitlines()]
    assert good == sorted(f"s3://{bucket}/{key}" for key in left)
    assert run() == (first[0], first[1], len(BAD))  # the retry: the same split, the moved files counted


@pytest.mark.parametrize(
    ("source", "quarantine", "inside"),
    [
        ("{tmp}/in", "{tmp}/in/quarantine", True),
        ("{tmp}/in/", "{tmp}/in", True),
        (["{tmp}/other", "{tmp}/in/*.dcm"], "{tmp}/in/q", True),
        ("{tmp}/in/a.dcm", "{tmp}/in/q", False),
        ("{tmp}/in", "{tmp}/in-quarantine", False),
        ("s3://bucket/in/", "s3://bucket/in/quarantine", True),
        ("s3://bucket/in/**.dcm", "s3://bucket/in/q", True),
        ("s3://bucket/in", "s3://bucket/incoming-quarantine", False),
        ("s3://bucket/in", "{tmp}/in", False),
        ({"manifest": "{tmp}/in/list.jsonl"}, "{tmp}/in/q", False),  # a file list is not read for this
    ],
)
def test_a_quarantine_inside_the_source_is_refused(source: Any, quarantine: str, inside: bool, tmp_path: Path) -> None:
    def at(value: Any) -> Any:
        if isinstance(value, list):
            return [at(item) for item in value]
        if isinstance(value, dict):
            return {key: at(item) for key, item in value.items()}
        return value.format(tmp=tmp_path)

    refuse = partial(refuse_overlap, at(source), quarantine=at(quarantine), report_location=str(tmp_path / "records"))
    if not inside:
        refuse()
        return
    with pytest.raises(ValueError, match=r"^the quarantine .* lies inside the source .*: put it elsewhere$"):
        refuse()


def test_records_inside_the_source_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^the report_location .*/in/records lies inside the source"):
        refuse_overlap(
            str(tmp_path / "in"), quarantine=str(tmp_path / "q"), report_location=str(tmp_path / "in/records")
        )
