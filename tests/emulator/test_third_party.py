"""Third-party STOW-RS clients against a running emulator, each stored instance then found through boto3:
HealthImaging's documented curl command (SigV4, session token), and Orthanc's DICOMweb plugin pushing a study."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from airflow_hi_stow.samples import SampleSet
from airflow_hi_stow.testing import RunningEmulator
from tests.emulator.conftest import stored_sop_uids
from tests.support.orthanc import running_orthanc, unavailable_reason

# HealthImaging developer guide, "Storing instances with STOW-RS", Example 1, with the endpoint as $URL.
AWS_CURL_EXAMPLE = """curl -X POST -v \\
  "$URL" \\
  --aws-sigv4 "aws:amz:$AWS_REGION:medical-imaging" \\
  --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \\
  --header "x-amz-security-token:$AWS_SESSION_TOKEN" \\
  --header "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD" \\
  --header "x-amz-decoded-content-length: $CONTENT_LENGTH" \\
  --header 'Accept: application/dicom+json' \\
  --header "Content-Type: application/dicom" \\
  --upload-file $FILENAME
"""


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.healthimaging_emulator(session_token="IQoJb3JpZ2luX2VjEXAMPLE-session-token")
def test_the_documented_curl_command_stores_each_file(
    healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    emulator = healthimaging_emulator
    for instance in sample.instances:
        environment = {
            **os.environ,
            "URL": f"{emulator.dicomweb_url}/studies",
            "AWS_REGION": emulator.region,
            "AWS_ACCESS_KEY_ID": emulator.access_key,
            "AWS_SECRET_ACCESS_KEY": emulator.secret_key,
            "AWS_SESSION_TOKEN": emulator.session_token or "",
            "CONTENT_LENGTH": str(instance.size),
            "FILENAME": str(instance.path),
        }
        result = subprocess.run(
            ["bash", "-c", AWS_CURL_EXAMPLE], env=environment, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "< HTTP/1.1 200 OK" in result.stderr
        assert "< HTTP/1.1 100 Continue" in result.stderr  # curl asked (Expect: 100-continue) and was answered
        response = json.loads(result.stdout)
        assert response["00081199"]["Value"][0]["00081155"]["Value"] == [instance.sop_instance_uid]
    assert stored_sop_uids(emulator) == {item.sop_instance_uid: True for item in sample.instances}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.healthimaging_emulator(session_token="IQoJb3JpZ2luX2VjEXAMPLE-session-token")
def test_curl_without_the_session_token_is_refused(healthimaging_emulator: RunningEmulator, sample: SampleSet) -> None:
    emulator = healthimaging_emulator
    command = AWS_CURL_EXAMPLE.replace('  --header "x-amz-security-token:$AWS_SESSION_TOKEN" \\\n', "")
    environment = {
        **os.environ,
        "URL": f"{emulator.dicomweb_url}/studies",
        "AWS_REGION": emulator.region,
        "AWS_ACCESS_KEY_ID": emulator.access_key,
        "AWS_SECRET_ACCESS_KEY": emulator.secret_key,
        "CONTENT_LENGTH": str(sample.instances[0].size),
        "FILENAME": str(sample.instances[0].path),
    }
    result = subprocess.run(["bash", "-c", command], env=environment, capture_output=True, text=True, check=False)
    assert "< HTTP/1.1 403 Forbidden" in result.stderr
    assert json.loads(result.stdout)["message"] == "The security token included in the request is invalid."
    assert stored_sop_uids(emulator) == {}


@pytest.mark.orthanc
@pytest.mark.healthimaging_emulator(no_auth=True)
def test_orthanc_pushes_a_study_with_its_dicomweb_client(
    healthimaging_emulator: RunningEmulator, sample: SampleSet, tmp_path: Path
) -> None:
    """Orthanc sends one chunked request with every instance of the study and fails its job unless every instance
    is listed in ReferencedSOPSequence (stow-rs.md §4.3)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    emulator = healthimaging_emulator
    servers = {"ahi": {"Url": f"{emulator.dicomweb_url}/", "ChunkedTransfers": True}}
    with running_orthanc(tmp_path / "orthanc", dicomweb_servers=servers) as orthanc:
        for instance in sample.instances:
            uploaded = requests.post(f"{orthanc.url}/instances", data=instance.path.read_bytes(), timeout=30)
            uploaded.raise_for_status()
        (study,) = orthanc.get("/studies")
        job = orthanc.post("/dicom-web/servers/ahi/stow", {"Resources": [study], "Synchronous": True})
    assert job["InstancesCount"] == str(len(sample.instances))
    assert emulator.stats()["operations"] == {"StoreDICOM": 1}
    assert stored_sop_uids(emulator) == {item.sop_instance_uid: True for item in sample.instances}
