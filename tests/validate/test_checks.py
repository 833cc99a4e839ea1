"""The checks one by one, on files made to fail them, and the settings that choose them."""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom.config
import pytest
from pydicom import Dataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.uid import UID

from airflow_hi_stow.samples import large_instance
from airflow_hi_stow.sources.instances import LocalFile
from airflow_hi_stow.storage.locations import LocalLocation
from airflow_hi_stow.validate import (
    CHECKS,
    PrivateAttribute,
    Severity,
    ValidationSettings,
    check_instance,
    inspect_file,
    read_instance,
    validate_files,
)
from airflow_hi_stow.validate.uids import uid_error
from tests.validate.dicom_files import ct, p10_bytes, pydicom_file, uid, write

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
RLE = "1.2.840.10008.1.2.5"
SOI = b"\xff\xd8\xff\xe0" + bytes(12)
KEY = bytes(32)


@pytest.fixture(autouse=True)
def _invalid_values_allowed() -> Iterator[None]:
    """These tests write invalid values on purpose: no warning from pydicom about them."""
    with warnings.catch_warnings(), pydicom.config.disable_value_validation():
        warnings.simplefilter("ignore")
        yield


def errors(data: bytes, settings: ValidationSettings | None = None) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for finding in check_instance(read_instance(io.BytesIO(data), len(data)), settings or ValidationSettings.of()):
        if finding.severity == Severity.ERROR:
            found.setdefault(finding.check, []).append(
                f"{finding.attribute}: {finding.message}" if finding.attribute else finding.message
            )
    return found


def _item(value: bytes) -> bytes:
    return b"\xfe\xff\x00\xe0" + struct.pack("<L", len(value)) + value


def _relabelled(data: bytes, syntax: str) -> bytes:
    """An Explicit VR Little Endian file whose file meta names another transfer syntax (the data set unchanged)."""
    old = b"\x10\x00UI" + struct.pack("<H", 20) + b"1.2.840.10008.1.2.1\x00"
    value = syntax.encode() + b"\x00" * (len(syntax) % 2)
    new = b"\x10\x00UI" + struct.pack("<H", len(value)) + value
    at = data.index(old)
    group_length = struct.unpack("<L", data[140:144])[0] + len(new) - len(old)
    return data[:140] + struct.pack("<L", group_length) + data[144:at] + new + data[at + len(old) :]


def encapsulated(frames: list[bytes], syntax: str = JPEG_BASELINE, *, bot: bool = True, **values: object) -> bytes:
    dataset = ct(number=7, NumberOfFrames=len(frames))
    for keyword, value in values.items():
        setattr(dataset, keyword, value)
    dataset.PixelData = encapsulate(frames, has_bot=bot)
    dataset.file_meta.TransferSyntaxUID = UID(syntax)
    return p10_bytes(dataset)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("1.2.840.10008.1.2", None),
        ("0.0", None),
        ("2.25.0", None),
        ("999.1", None),
        ("", "is empty"),
        ("1.2.03", "has a component with a leading zero"),
        ("1..2", "has an empty component (two dots in a row, or a dot at either end)"),
        ("1.2.", "has an empty component (two dots in a row, or a dot at either end)"),
        ("1.2.3 ", "is padded with spaces (UIDs are padded with a NUL byte)"),
        ("anonymous-organization.123", "holds characters other than digits and dots"),
        ("2.25." + "1" * 60, "is longer than 64 characters (65)"),
    ],
)
def test_uid_syntax(value: str, error: str | None) -> None:
    assert uid_error(value) == error


def test_severities_by_group_and_by_name_and_their_errors() -> None:
    settings = ValidationSettings.of({"pixels.photometric": "warning", "pixels": "off", "deid": "ERROR"})
    assert settings.severity("pixels.photometric") == Severity.WARNING
    assert settings.severity("pixels.native_length") == Severity.OFF
    assert settings.severity("deid.private_attributes") == Severity.ERROR
    assert settings.severity("identity.uid_root") == Severity.WARNING  # untouched default
    assert {check.name for check in CHECKS} == set(settings.severities)
    with pytest.raises(ValueError, match=r"no check named 'pixels.colour'; the checks are container.readable, "):
        ValidationSettings.of({"pixels.colour": "off"})
    with pytest.raises(ValueError, match=r"severity of deid: 'fatal' is not one of error, warning, off"):
        ValidationSettings.of({"deid": "fatal"})
    with pytest.raises(ValueError, match=r"container.readable cannot be changed"):
        ValidationSettings.of({"container.readable": "off"})
    assert ValidationSettings.of({"container": "off"}).severity("container.readable") == Severity.ERROR


def test_private_attributes_are_written_as_the_standard_writes_them() -> None:
    parsed = PrivateAttribute.parse("(0009,xx01) GEMS_IDEN_01")
    assert parsed == PrivateAttribute("GEMS_IDEN_01", 0x0009, 0x01)
    assert str(parsed) == "(0009,xx01) GEMS_IDEN_01"
    with pytest.raises(ValueError, match="not a private attribute"):
        PrivateAttribute.parse("(0010,xx10) NOT_PRIVATE")


def test_the_file_meta_group_length_must_match(tmp_path: Path) -> None:
    data = bytearray(p10_bytes(ct()))
    assert data[132:136] == b"\x02\x00\x00\x00"
    stated = struct.unpack("<L", data[140:144])[0]
    data[140:144] = struct.pack("<L", stated + 2)
    assert errors(bytes(data)) == {
        "container.file_meta": [
            f"FileMetaInformationGroupLength: states {stated + 2} bytes of file meta information, the group holds "
            f"{stated}"
        ]
    }


def test_an_unknown_transfer_syntax_and_a_data_set_in_the_wrong_vr_encoding() -> None:
    dataset = ct()
    dataset.file_meta.TransferSyntaxUID = UID("1.2.826.0.1.3680043.99.1")
    found = errors(p10_bytes(dataset))
    assert found["container.transfer_syntax"] == [
        "TransferSyntaxUID: is not a transfer syntax pydicom knows: the data set's encoding is unknown"
    ]
    assert list(found) == ["container.transfer_syntax", "healthimaging.transfer_syntax"]
    jpeg_declared_explicit = pydicom_file("SC_rgb_jpeg.dcm").read_bytes()  # implicit VR inside
    assert errors(jpeg_declared_explicit)["container.transfer_syntax"] == [
        "the data set is not encoded with the implicit/explicit VR its transfer syntax declares"
    ]


def test_native_pixel_data_length_is_exact_with_one_byte_of_padding_and_bit_packing() -> None:
    odd = ct(Rows=3, Columns=3, BitsAllocated=8, BitsStored=8, HighBit=7, PixelRepresentation=0)
    odd.PixelData = bytes(10)  # 9 bytes and the padding byte
    assert errors(p10_bytes(odd)) == {}
    odd.PixelData = bytes(12)
    assert errors(p10_bytes(odd)) == {
        "pixels.native_length": [
            "PixelData: holds 12 bytes; Rows x Columns x Samples x Bits Allocated x Frames makes 9 plus one byte "
            "of padding"
        ]
    }
    packed = ct(Rows=4, Columns=5, BitsAllocated=1, BitsStored=1, HighBit=0, PixelRepresentation=0)
    packed.NumberOfFrames = 3
    packed.PixelData = bytes(8)  # 60 bits: 7.5 bytes, 8 with the padding
    assert errors(p10_bytes(packed)) == {}
    packed.PixelData = bytes(60)  # one byte per pixel: not packed
    assert errors(p10_bytes(packed))["pixels.native_length"] == [
        "PixelData: holds 60 bytes; Rows x Columns x Samples x Bits Allocated x Frames (bit-packed) makes 8"
    ]


def test_encapsulated_frames_offsets_and_first_bytes() -> None:
    assert errors(encapsulated([SOI, SOI, SOI])) == {}
    assert errors(encapsulated([SOI, SOI, SOI], bot=False)) == {}
    assert errors(encapsulated([SOI, bytes(16)]))["pixels.encapsulated"] == [
        "PixelData: 1 of 2 frame(s) do not begin as JPEG Baseline (Process 1) data does (first: frame 2)"
    ]
    two_frames_said_three = encapsulated([SOI, SOI], NumberOfFrames=3)
    assert errors(two_frames_said_three)["pixels.encapsulated"] == ["PixelData: 2 fragment(s) for 3 frame(s)"]
    dataset = ct(number=8, NumberOfFrames=2)
    table = _item(struct.pack("<L", 0))  # a Basic Offset Table with one offset, for two frames
    dataset.PixelData = table + _item(SOI) + _item(SOI)
    dataset.file_meta.TransferSyntaxUID = UID(JPEG_BASELINE)
    assert errors(p10_bytes(dataset))["pixels.encapsulated"] == [
        "PixelData: the Basic Offset Table lists 1 frame(s), Number of Frames is 2"
    ]
    dataset.PixelData = _item(struct.pack("<LL", 0, 10)) + _item(SOI) + _item(SOI)
    assert errors(p10_bytes(dataset))["pixels.encapsulated"] == [
        "PixelData: a Basic Offset Table offset does not point at a fragment"
    ]
    extended = ct(number=9, NumberOfFrames=2)
    extended.PixelData, extended.ExtendedOffsetTable, extended.ExtendedOffsetTableLengths = encapsulate_extended(
        [SOI, SOI]
    )
    extended.file_meta.TransferSyntaxUID = UID(JPEG_BASELINE)
    assert errors(p10_bytes(extended)) == {}
    extended.ExtendedOffsetTable = extended.ExtendedOffsetTable[:8]
    assert errors(p10_bytes(extended))["pixels.encapsulated"] == [
        "ExtendedOffsetTable: lists 1 frame(s), Number of Frames is 2"
    ]
    rle_header = struct.pack("<16L", 1, 64, *([0] * 14))
    assert errors(encapsulated([rle_header], RLE)) == {}
    assert "pixels.encapsulated" in errors(encapsulated([SOI], RLE))
    native_in_jpeg = _relabelled(p10_bytes(ct(number=10)), JPEG_BASELINE)  # pydicom would not write it
    assert errors(native_in_jpeg)["pixels.encapsulated"] == [
        "PixelData: has a defined length (native) in an encapsulated transfer syntax"
    ]


def test_photometric_interpretation_against_samples_per_pixel() -> None:
    assert errors(p10_bytes(ct(PhotometricInterpretation="YBR_FULL")))["pixels.photometric"] == [
        "SamplesPerPixel: YBR_FULL has 3 sample(s) per pixel, SamplesPerPixel says 1"
    ]
    assert errors(p10_bytes(ct(PhotometricInterpretation="GREYSCALE")))["pixels.photometric"] == [
        "PhotometricInterpretation: not a defined term of PS3.3 C.7.6.3.1.2"
    ]


def test_an_image_without_its_pixel_data() -> None:
    dataset = ct()
    del dataset.PixelData
    assert errors(p10_bytes(dataset)) == {
        "pixels.present": ["Rows and Columns describe an image but there is no pixel data (a file cut short?)"]
    }


def test_healthimaging_element_limits() -> None:
    found = errors(p10_bytes(ct(PatientID="P" * 257, SeriesNumber=2**31, NumberOfStudyRelatedInstances=1_000_001)))
    assert found == {
        "healthimaging.element_length": [
            "PatientID: 257 characters, more than the 256 HealthImaging imports "
            "(https://docs.aws.amazon.com/healthimaging/latest/devguide/dicom-element-constraints.html)",
            "NumberOfStudyRelatedInstances: above the 1000000 HealthImaging accepts "
            "(https://docs.aws.amazon.com/healthimaging/latest/devguide/dicom-element-constraints.html)",
            "SeriesNumber: above the 2147483647 HealthImaging accepts "
            "(botocore medical-imaging 2023-07-19 service-2.json (DICOMTags) SeriesNumber (int32))",
        ]
    }


def test_the_deidentification_gate() -> None:
    gate = ValidationSettings.of({"deid": "error"}, private_allow_list=["(0009,xx01) GEMS_IDEN_01"])
    plain = ct()
    found = errors(p10_bytes(plain), gate)
    assert found["deid.identity_removed"] == [
        "PatientIdentityRemoved: is not YES",
        "neither DeidentificationMethod nor DeidentificationMethodCodeSequence records the method",
    ]
    assert (
        "(0009,10xx): 8 private element(s) of private creator 'GEMS_IDEN_01' not on the allow-list"
        in found["deid.private_attributes"]
    )  # CT_small's nine (0009,10xx) but (0009,1001), which is allowed, and its creator (0009,0010) with it
    cleaned = Dataset()
    cleaned.update({k: v for k, v in ct().items() if not k.is_private})
    cleaned.file_meta = ct().file_meta
    cleaned.PatientIdentityRemoved = "YES"
    cleaned.DeidentificationMethod = "PS3.15 Basic Application Level Confidentiality Profile"
    nested = Dataset()
    block = nested.private_block(0x0011, "SOME_VENDOR", create=True)
    block.add_new(0x01, "LO", "kept")
    cleaned.ReferencedImageSequence = [nested]
    assert errors(p10_bytes(cleaned), gate) == {
        "deid.private_attributes": [
            "ReferencedImageSequence[1].(0011,10xx): 2 private element(s) of private creator 'SOME_VENDOR' not on "
            "the allow-list"
        ]
    }
    allowed = ValidationSettings.of({"deid": "error"}, private_allow_list=["(0011,xx01) SOME_VENDOR"])
    assert errors(p10_bytes(cleaned), allowed) == {}


def test_files_larger_than_the_memory_limit_are_read_in_place_with_the_same_findings(tmp_path: Path) -> None:
    files = {
        "good.dcm": p10_bytes(ct()),
        "cut.dcm": p10_bytes(ct())[:-4000],
        "jpeg.dcm": encapsulated([SOI, SOI, bytes(16)]),
        "deflated.dcm": pydicom_file("image_dfl.dcm").read_bytes(),
        "big-endian.dcm": pydicom_file("MR_small_bigendian.dcm").read_bytes(),
        "implicit.dcm": pydicom_file("MR_small_implicit.dcm").read_bytes(),
    }
    in_place = ValidationSettings.of(max_in_memory_bytes=0)
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        read = inspect_file(LocalFile.at(path), ValidationSettings.of(), KEY)
        streamed = inspect_file(LocalFile.at(path), in_place, KEY)
        assert streamed.findings == read.findings, name
        assert (name, bool(read.findings)) == (name, name in ("cut.dcm", "jpeg.dcm"))


def test_many_problems_of_one_check_are_summed_up() -> None:
    dataset = ct()
    dataset.ReferencedImageSequence = [Dataset() for _ in range(25)]
    for item in dataset.ReferencedImageSequence:
        item.ReferencedSOPInstanceUID = "1.2.03"
    found = errors(p10_bytes(dataset))["identity.uid_syntax"]
    assert len(found) == 21
    assert found[-1] == "and 5 more of the same check"


def test_a_series_split_over_two_studies_and_a_series_number_that_changes(tmp_path: Path) -> None:
    series = uid("one", "series")
    files = [
        write(ct(study="one", number=1, SeriesInstanceUID=series), tmp_path / "a.dcm"),
        write(ct(study="one", number=2, SeriesInstanceUID=series), tmp_path / "b.dcm"),
        write(ct(study="two", number=3, SeriesInstanceUID=series, SeriesNumber=7), tmp_path / "c.dcm"),
    ]
    run = validate_files(
        [LocalFile.at(p) for p in files],
        quarantine=LocalLocation(tmp_path / "q"),
        output=LocalLocation(tmp_path / "out"),
        settings=ValidationSettings.of({"consistency.series": "error"}),
    )
    assert [Path(o.source).name for o in run.quarantined] == ["c.dcm"]
    (finding,) = run.quarantined[0].findings
    assert (finding.check, finding.attribute) == ("consistency.series", "SeriesNumber, StudyInstanceUID")
    assert run.conflicts == [
        {
            "level": "series",
            "series_instance_uid": series,
            "attributes": ["SeriesNumber", "StudyInstanceUID"],
            "instances": 3,
            "minority": [str(files[2])],
        }
    ]


def test_an_instance_over_1_gb_is_refused_without_reading_its_pixels(tmp_path: Path) -> None:
    huge = large_instance(tmp_path / "huge.dcm", 1908 * 512 * 1024)  # sparse: no disk, no memory
    assert huge.size > 10**9
    verdict = inspect_file(LocalFile.at(huge.path), ValidationSettings.of(), KEY)
    assert [(f.check, f.message) for f in verdict.findings] == [
        (
            "healthimaging.instance_size",
            f"{huge.size} bytes, more than the 1000000000 one request may carry "
            "(https://docs.aws.amazon.com/healthimaging/latest/devguide/dicomweb-storing.html)",
        )
    ]
