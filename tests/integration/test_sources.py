"""Sources (local paths, globs, S3 on moto's server, lists, XCom values), content fingerprints, and the locations
that keep ledgers and manifests (a local directory, an S3 prefix)."""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import xxhash
from pydicom import dcmread

from airflow_hi_stow.core.results import InstanceResult, Outcome
from airflow_hi_stow.engine.ledger import Ledger, LedgerEntry, ManifestSpool, read_manifest
from airflow_hi_stow.samples import SampleSet, generate_dataset
from airflow_hi_stow.sources.fingerprints import HashingLocalFile, current_fingerprint, sent_fingerprint
from airflow_hi_stow.sources.instances import HEADER_BLOCK, InvalidInstance, read_instance
from airflow_hi_stow.sources.resolve import FileList, flatten_source, read_file_list, resolve_sources, write_file_list
from airflow_hi_stow.sources.s3 import S3Object, list_s3
from airflow_hi_stow.storage.locations import LocalLocation, S3Location, open_location
from airflow_hi_stow.transport.bodies import MultipartBody, read_blocks
from tests.support.s3 import MotoS3


@pytest.fixture
def sample(tmp_path: Path) -> SampleSet:
    return generate_dataset(
        tmp_path / "set",
        patients=2,
        studies_per_patient=(1, 1),
        series_per_study=(1, 1),
        instances_per_series=(3, 3),
        redeliver_one_study=False,
    )


def names(items: list[Any]) -> list[str]:
    return [item.source if isinstance(item, InstanceResult) else item.name for item in items]


def test_local_directories_globs_and_missing_paths(sample: SampleSet, tmp_path: Path) -> None:
    root = sample.root
    (root / "README.txt").write_text("not DICOM")
    first = str(sample.instances[0].path)
    items = list(
        resolve_sources([str(root), first, str(root / "*" / "*" / "*" / "000[12].dcm"), str(tmp_path / "missing.dcm")])
    )
    paths = [str(p) for p in root.rglob("*") if p.is_file()]
    assert sorted(names(items)[: len(paths)]) == sorted(paths)  # the directory, recursively; repeats dropped
    assert len(items) == len(paths) + 1
    missing = items[-1]
    assert isinstance(missing, InstanceResult)
    assert missing.outcome is Outcome.REJECTED
    assert missing.reason == "no such file or directory"
    assert all(isinstance(item, HashingLocalFile) for item in items[:-1])


def test_a_glob_or_directory_matching_nothing_is_reported(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    items = list(resolve_sources([str(tmp_path / "*.dcm"), str(tmp_path / "empty")]))
    assert [(i.source, i.reason) for i in items if isinstance(i, InstanceResult)] == [
        (str(tmp_path / "*.dcm"), "no file matches the pattern"),
        (str(tmp_path / "empty"), "the directory holds no file"),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/a.dcm", ["/a.dcm"]),
        (["/a.dcm", ["/b.dcm", ["s3://b/c"]]], ["/a.dcm", "/b.dcm", "s3://b/c"]),
        ('["/a.dcm", "/b.dcm"]', ["/a.dcm", "/b.dcm"]),  # an XCom rendered by Jinja as JSON...
        ("['/a.dcm', '/b.dcm']", ["/a.dcm", "/b.dcm"]),  # ...or as a Python list
        (("/a.dcm" for _ in range(2)), ["/a.dcm", "/a.dcm"]),  # any iterable, e.g. a lazy XCom sequence
        (None, []),
        ("[not a list", ["[not a list"]),
    ],
)
def test_source_values_are_flattened(value: Any, expected: list[str]) -> None:
    assert list(flatten_source(value)) == expected


def test_a_mapping_is_not_a_source_unless_it_names_a_file_list() -> None:
    with pytest.raises(TypeError, match="not dict"):
        list(flatten_source({"files": []}))
    assert list(flatten_source([{"manifest": "s3://b/list.jsonl", "files": 3}])) == [FileList("s3://b/list.jsonl")]


def test_s3_prefixes_exact_keys_and_globs(moto_s3: MotoS3, sample: SampleSet) -> None:
    uris = moto_s3.upload_tree(sample.root, "incoming/batch1")
    client = moto_s3.client()
    client.put_object(Bucket=moto_s3.bucket, Key="incoming/batch1/", Body=b"")  # a console "folder"
    client.put_object(Bucket=moto_s3.bucket, Key="incoming/batch10/other.dcm", Body=b"x")
    base = f"s3://{moto_s3.bucket}/incoming/batch1"
    assert [o.name for o in list_s3(client, base)] == uris  # the prefix as a folder: not batch10
    assert [o.name for o in list_s3(client, base + "/")] == uris
    assert [o.name for o in list_s3(client, uris[1])] == [uris[1]]
    assert [o.name for o in list_s3(client, base + "/*/*/*/0002.dcm")] == [u for u in uris if u.endswith("0002.dcm")]
    (listed,) = list_s3(client, uris[0])
    assert listed.size == sample.instances[0].size
    assert listed.etag.strip('"') == hashlib.md5(sample.instances[0].path.read_bytes()).hexdigest()  # noqa: S324

    items = list(resolve_sources([base, f"s3://{moto_s3.bucket}/nothing-here", "s3://"], lambda: client))
    assert names(items)[: len(uris)] == uris
    assert [(i.source, i.reason) for i in items if isinstance(i, InstanceResult)] == [
        (f"s3://{moto_s3.bucket}/nothing-here", "no S3 object matches"),
        ("s3://", "no bucket in the S3 URI"),
    ]


def test_s3_without_a_connection_is_reported() -> None:
    (item,) = resolve_sources("s3://bucket/key")
    assert isinstance(item, InstanceResult)
    assert item.reason == "an s3:// source needs an S3 connection"


def count_gets(client: Any) -> list[bytes | None]:
    """The Range header of every GetObject the client sends from now on."""
    ranges: list[bytes | None] = []
    client.meta.events.register(
        "before-send.s3.GetObject", lambda request, **_: ranges.append(request.headers.get("Range"))
    )
    return ranges


def fetched_bytes(ranges: list[bytes | None]) -> int:
    total = 0
    for byte_range in ranges:
        assert byte_range is not None, "a header read must never GET the whole object"
        start, end = byte_range.decode().removeprefix("bytes=").split("-")
        total += int(end) - int(start) + 1
    return total


def one_instance(tmp_path: Path) -> Any:
    generated = generate_dataset(
        tmp_path / "g",
        patients=1,
        studies_per_patient=(1, 1),
        series_per_study=(1, 1),
        instances_per_series=(1, 1),
        redeliver_one_study=False,
    )
    return dcmread(generated.instances[0].path)


def test_s3_headers_come_from_bounded_ranged_gets_and_bodies_stream(moto_s3: MotoS3, tmp_path: Path) -> None:
    """A 200 kB private element before the identifiers is skipped, not fetched: two blocks at most."""
    dataset = one_instance(tmp_path)
    dataset.add_new(0x00091010, "OB", b"\0" * 200_000)
    dataset.add_new(0x00090010, "LO", "HI-STOW TEST")
    big = tmp_path / "big.dcm"
    dataset.save_as(big, enforce_file_format=True)
    client = moto_s3.client()
    client.upload_file(str(big), moto_s3.bucket, "big.dcm")
    (obj,) = list_s3(client, f"s3://{moto_s3.bucket}/big.dcm")
    ranges = count_gets(client)
    instance = read_instance(obj)
    assert instance.sop_instance_uid == str(dataset.SOPInstanceUID)
    assert ranges[0] == f"bytes=0-{HEADER_BLOCK - 1}".encode()
    assert fetched_bytes(ranges) <= 2 * HEADER_BLOCK
    ranges.clear()
    assert b"".join(read_blocks(obj)) == big.read_bytes()
    assert ranges == [None]  # the body: one plain streaming GET


def test_the_header_of_a_50_mb_encapsulated_pdf_costs_one_block(moto_s3: MotoS3, tmp_path: Path) -> None:
    """The stage-1 reader fetched all 52,429,454 bytes of such an object to read its header."""
    dataset = one_instance(tmp_path)
    del dataset.PixelData
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"  # Encapsulated PDF Storage
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.MIMETypeOfEncapsulatedDocument = "application/pdf"
    dataset.EncapsulatedDocument = b"%PDF-1.4\n" + b"\0" * (50 * 1024 * 1024)
    pdf = tmp_path / "report.dcm"
    dataset.save_as(pdf, enforce_file_format=True)
    client = moto_s3.client()
    client.upload_file(str(pdf), moto_s3.bucket, "report.dcm")
    (obj,) = list_s3(client, f"s3://{moto_s3.bucket}/report.dcm")
    assert obj.size > 50 * 1024 * 1024
    ranges = count_gets(client)
    instance = read_instance(obj)
    assert instance.sop_class_uid == "1.2.840.10008.5.1.4.1.1.104.1"
    assert fetched_bytes(ranges) == HEADER_BLOCK


def test_an_s3_object_rewritten_after_listing_is_not_sent(moto_s3: MotoS3, sample: SampleSet) -> None:
    client = moto_s3.client()
    client.upload_file(str(sample.instances[0].path), moto_s3.bucket, "a.dcm")
    (obj,) = list_s3(client, f"s3://{moto_s3.bucket}/a.dcm")
    client.upload_file(str(sample.instances[1].path), moto_s3.bucket, "a.dcm")
    with pytest.raises(OSError, match="changed in S3 since it was listed"):
        obj.open()
    gone = S3Object(client, moto_s3.bucket, "gone.dcm", 10, '"x"')
    with pytest.raises(InvalidInstance) as raised:
        read_instance(gone)
    assert raised.value.reason == "cannot read the file (S3 error NoSuchKey)"


def test_local_files_are_hashed_as_they_stream(sample: SampleSet) -> None:
    path = sample.instances[0].path
    file = HashingLocalFile.at(path)
    assert sent_fingerprint(file) is None
    with file.open() as stream:
        stream.read(100)  # an attempt cut short hashes nothing
    assert sent_fingerprint(file) is None
    assert b"".join(read_blocks(file, block_size=1000)) == path.read_bytes()
    digest = f"xxh3-128:{xxhash.xxh3_128(path.read_bytes()).hexdigest()}"
    assert sent_fingerprint(file) == digest
    assert current_fingerprint(file) == digest
    path.write_bytes(path.read_bytes()[:-1] + b"\x01")  # same size, other content
    assert current_fingerprint(file) != digest
    path.unlink()
    assert current_fingerprint(file) is None


def test_a_small_file_read_with_its_header_is_sent_from_that_read(sample: SampleSet, tmp_path: Path) -> None:
    """With ``with_content`` a file within one header block comes with its bytes; the body sends them (and the
    ledger digest is theirs) without opening the file again. A larger file, or a read without it, has none."""
    paths = [instance.path for instance in sample.instances[:2]]
    originals = [path.read_bytes() for path in paths]
    assert all(len(data) <= HEADER_BLOCK for data in originals)
    instances = [read_instance(HashingLocalFile.at(path), with_content=True) for path in paths]
    assert [instance.content for instance in instances] == originals
    assert read_instance(HashingLocalFile.at(paths[0])).content is None
    assert "content" not in repr(instances[0])  # never the file's bytes in a log or an error
    for path in paths:
        path.unlink()  # nothing is read from disk any more
    body = MultipartBody([i.file for i in instances], [i.content for i in instances])
    sent = b"".join(body)
    assert len(sent) == len(body)
    assert all(data in sent for data in originals)
    digests = [f"xxh3-128:{xxhash.xxh3_128(data).hexdigest()}" for data in originals]
    assert [sent_fingerprint(i.file) for i in instances] == digests
    assert [current_fingerprint(i.file, i.content) for i in instances] == digests
    dataset = one_instance(tmp_path)
    dataset.add_new(0x00091010, "OB", b"\0" * HEADER_BLOCK)
    dataset.add_new(0x00090010, "LO", "HI-STOW TEST")
    big = tmp_path / "big.dcm"
    dataset.save_as(big, enforce_file_format=True)
    assert read_instance(HashingLocalFile.at(big), with_content=True).content is None


def test_the_sha256_pass_takes_the_files_digests_and_sending_reads_them_once(sample: SampleSet) -> None:
    """In the sha256 mode the body-hash pass is the one that hashes the files; the pass that sends the body reads
    them without hashing again (a file changed in between makes the body's hash wrong: the server refuses it)."""
    paths = [instance.path for instance in sample.instances[:3]]
    originals = [path.read_bytes() for path in paths]
    files = [HashingLocalFile.at(path) for path in paths]
    body = MultipartBody(files)
    assert body.sha256 == hashlib.sha256(b"".join(body)).hexdigest()
    digests = [f"xxh3-128:{xxhash.xxh3_128(data).hexdigest()}" for data in originals]
    assert [sent_fingerprint(file) for file in files] == digests
    paths[0].write_bytes(originals[0][:-1] + b"\x01")  # same size, other content, after the hash pass
    sent = b"".join(body)
    assert hashlib.sha256(sent).hexdigest() != body.sha256  # the server would refuse this body
    assert [sent_fingerprint(file) for file in files] == digests  # not hashed again while sending


def test_local_location_appends_durably_and_ignores_a_torn_line(tmp_path: Path) -> None:
    location = open_location(str(tmp_path / "base"), ["dag_id=d", "run_id=r", "task_id=t", "map_index=-1"], list)
    assert isinstance(location, LocalLocation)
    assert location.uri == str(tmp_path / "base/dag_id=d/run_id=r/task_id=t/map_index=-1")
    assert list(location.read_lines("ledger")) == []
    location.append_lines("ledger", ["a", "b"])
    location.append_lines("ledger", ["c"])
    with (location.root / "ledger.jsonl").open("a") as log:
        log.write('{"torn')  # a kill in the middle of a write
    assert list(location.read_lines("ledger")) == ["a", "b", "c"]


def test_s3_location_writes_segments_and_reads_them_all(moto_s3: MotoS3, tmp_path: Path) -> None:
    base = f"s3://{moto_s3.bucket}/manifests/"
    first = open_location(base, ["dag_id=d", "run_id=r"], moto_s3.client)
    second = open_location(base, ["dag_id=d", "run_id=r"], moto_s3.client)  # the next try
    assert isinstance(first, S3Location)
    assert first.uri == f"s3://{moto_s3.bucket}/manifests/dag_id=d/run_id=r"
    first.append_lines("ledger", ["a", "b"])
    first.append_lines("ledger", ["c"])
    second.append_lines("ledger", ["d"])
    assert sorted(second.read_lines("ledger")) == ["a", "b", "c", "d"]
    assert first.put_file("manifest.jsonl", io.BytesIO(b"line\n")) == f"{first.uri}/manifest.jsonl"
    body = moto_s3.client().get_object(Bucket=moto_s3.bucket, Key="manifests/dag_id=d/run_id=r/manifest.jsonl")
    assert body["Body"].read() == b"line\n"


def test_parallel_appenders_of_one_s3_location_never_overwrite_a_segment(moto_s3: MotoS3) -> None:
    """Ledger writes run in parallel, one per confirmed request: every line must survive."""
    location = open_location(f"s3://{moto_s3.bucket}/par", ["run"], moto_s3.client)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: location.append_lines("ledger", [f"line-{n}"]), range(40)))
    assert sorted(location.read_lines("ledger")) == sorted(f"line-{n}" for n in range(40))


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_location_puts_reads_lists_and_deletes_files(kind: str, moto_s3: MotoS3, tmp_path: Path) -> None:
    """What a validation run needs of its quarantine and records: whole files put, read back, listed (only those
    directly in the location, sorted) and deleted."""
    base = str(tmp_path / "base") if kind == "local" else f"s3://{moto_s3.bucket}/base"
    location = open_location(base, ["dag_id=d", "run_id=r"], moto_s3.client)
    assert list(location.names()) == []
    assert location.get_bytes("b.reason.json") is None
    assert location.put_file("b.dcm", io.BytesIO(b"first")) == f"{location.uri}/b.dcm"
    location.put_file("b.dcm", io.BytesIO(b"second"))  # replaced whole
    location.put_file("b.reason.json", io.BytesIO(b"{}"))
    location.put_file("a.reason.json", io.BytesIO(b"{}"))
    location.append_lines("ledger", ["not a file of this location in S3"])
    deeper = open_location(base, ["dag_id=d", "run_id=r", "task_id=t"], moto_s3.client)
    deeper.put_file("c.reason.json", io.BytesIO(b"{}"))  # in a sub-folder: not listed
    assert location.get_bytes("b.dcm") == b"second"
    assert list(location.names(".reason.json")) == ["a.reason.json", "b.reason.json"]
    expected = ["a.reason.json", "b.dcm", "b.reason.json"] + (["ledger.jsonl"] if kind == "local" else [])
    assert list(location.names()) == expected
    location.delete("b.dcm")
    location.delete("b.dcm")  # gone already: nothing happens
    assert location.get_bytes("b.dcm") is None
    assert "b.dcm" not in list(location.names())
    assert deeper.get_bytes("c.reason.json") == b"{}"


def test_an_s3_location_that_cannot_be_reached_raises_oserror(moto_s3: MotoS3) -> None:
    location = open_location(f"s3://no-such-bucket-{moto_s3.bucket}/base", ["run"], moto_s3.client)
    with pytest.raises(OSError, match=r"cannot list s3://no-such-bucket-.*/base/run/ \(NoSuchBucket\)"):
        list(location.names())
    with pytest.raises(OSError, match=r"\(NoSuchBucket\)"):
        location.get_bytes("a.json")


def test_file_lists_name_local_and_s3_entries(moto_s3: MotoS3, sample: SampleSet, tmp_path: Path) -> None:
    uris = moto_s3.upload_tree(sample.root, "listed")
    local = [str(i.path) for i in sample.instances[:2]]
    listing = tmp_path / "shard.jsonl"
    listing.write_bytes(write_file_list([*local, uris[0], str(tmp_path / "gone.dcm")]))
    client = moto_s3.client()
    client.put_object(Bucket=moto_s3.bucket, Key="lists/one.jsonl", Body=write_file_list(uris[1:3]))
    source = [
        FileList(str(listing)).to_source(files=4),
        {"manifest": f"s3://{moto_s3.bucket}/lists/one.jsonl"},
        {"manifest": str(tmp_path / "no-such-list.jsonl")},
    ]
    items = list(resolve_sources(source, lambda: client))
    assert names(items) == [
        *local,
        uris[0],
        str(tmp_path / "gone.dcm"),
        *uris[1:3],
        str(tmp_path / "no-such-list.jsonl"),
    ]
    reasons = {i.source: i.reason for i in items if isinstance(i, InstanceResult)}
    assert reasons[str(tmp_path / "gone.dcm")] == "no such file or directory"
    assert str(reasons[str(tmp_path / "no-such-list.jsonl")]).startswith("cannot read the file list")
    assert read_file_list(write_file_list(["a b", "naïve\nname"])) == ["a b", "naïve\nname"]
    assert read_file_list(b'{"source": "s3://b/k", "size": 3}\n\n"x.dcm"\n') == ["s3://b/k", "x.dcm"]
    with pytest.raises(ValueError, match="line 1 names no source"):
        read_file_list(b'{"path": "x"}\n')


def test_ledger_round_trip_keeps_only_stored_entries(tmp_path: Path) -> None:
    location = LocalLocation(tmp_path)
    ledger = Ledger(location)
    stored = InstanceResult("/a.dcm", Outcome.STORED, size=3, sop_instance_uid="1.2.3", retrieve_url="http://x")
    warned = InstanceResult("/b.dcm", Outcome.STORED_WITH_WARNING, size=4, reason_code=0xB000, reason="B000 (x)")
    ledger.record([LedgerEntry(stored, "xxh3-128:aa"), LedgerEntry(warned, "etag:bb")])
    ledger.record([LedgerEntry(InstanceResult("/c.dcm", Outcome.FAILED), "xxh3-128:cc")])
    location.append_lines("ledger", ["{not json", '{"source": "/d.dcm"}'])
    loaded = Ledger(LocalLocation(tmp_path)).load()
    assert loaded == {"/a.dcm": LedgerEntry(stored, "xxh3-128:aa"), "/b.dcm": LedgerEntry(warned, "etag:bb")}


def test_manifest_spool_publishes_one_line_per_result(tmp_path: Path) -> None:
    spool = ManifestSpool()
    results = [InstanceResult(f"/{n}.dcm", Outcome.STORED, size=n) for n in range(3)]
    for item in results:
        spool.write(item, fingerprint="xxh3-128:00")
    uri = spool.publish(LocalLocation(tmp_path / "out"))
    spool.close()
    assert uri == str(tmp_path / "out" / "manifest.jsonl")
    assert list(read_manifest(Path(uri).read_text().splitlines())) == results
    assert '"fingerprint":"xxh3-128:00"' in Path(uri).read_text()
