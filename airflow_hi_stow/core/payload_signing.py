"""The payload signing modes of a STOW-RS request (apart from :mod:`.sigv4`, so that naming them imports no
botocore: the command line's ``--help`` lists them)."""

from __future__ import annotations

from enum import StrEnum


class PayloadSigning(StrEnum):
    """How much of a request the signature covers (the connection extra ``payload_signing``).

    ``streaming``: **the headers only.** The body is sent as it is and is not covered: whoever holds a valid
    signature (from a log, a proxy) can send any body with it until it expires (15 minutes). HealthImaging's
    documented form, and the fastest.
    ``aws-chunked``: **every chunk**: the body is framed in chunks, each signed and chained to the previous one, so
    a changed, reordered or cut body is refused. Costs one SHA-256 pass over the body, streamed.
    ``sha256``: **the whole body**: its SHA-256 is signed before sending. Costs a first hashing pass over the files
    before each request.
    """

    STREAMING = "streaming"
    AWS_CHUNKED = "aws-chunked"
    SHA256 = "sha256"

    @property
    def protects(self) -> str:
        """What the signature covers, in a few words (for docs, forms and logs)."""
        return _PROTECTS[self]


_PROTECTS = {
    PayloadSigning.STREAMING: "the headers only (the body is not covered by the signature)",
    PayloadSigning.AWS_CHUNKED: "the headers and every chunk of the body",
    PayloadSigning.SHA256: "the headers and the whole body's hash",
}
