"""The emulator's side of SigV4: parsing a received Authorization header and recomputing its signature."""

from __future__ import annotations

import pytest

from airflow_hi_stow.core import sigv4
from airflow_hi_stow.emulator import sigv4_verify
from tests.unit.test_sigv4 import AHI_URL, CREDENTIALS, ahi_sign, frozen_clock

pytestmark = pytest.mark.usefixtures(frozen_clock.__name__)


def test_recompute_reproduces_a_signature_from_the_received_headers() -> None:
    signed = ahi_sign(sigv4.PayloadSigning.STREAMING)
    authorization = sigv4_verify.parse_authorization(signed.headers["Authorization"])
    received = {name: value for name, value in signed.headers.items() if name.lower() in authorization.signed_headers}
    received["host"] = "dicom-medical-imaging.us-east-1.amazonaws.com"
    again = sigv4_verify.recompute(CREDENTIALS, "us-east-1", "POST", AHI_URL, received, signed.timestamp)
    assert again.signature == signed.signature == authorization.signature
    assert authorization.access_key == "AKIAIOSFODNN7EXAMPLE"
    assert (authorization.date, authorization.region, authorization.service) == (
        "20130524",
        "us-east-1",
        "medical-imaging",
    )


@pytest.mark.parametrize(
    "value",
    [
        "",
        "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/medical-imaging/aws4_request, Signature=00",
        "Basic dXNlcjpwYXNz",
    ],
)
def test_malformed_authorization_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="malformed"):
        sigv4_verify.parse_authorization(value)
