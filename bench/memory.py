"""Peak memory of the STOW-RS client while it uploads large bodies to a loopback sink.

Each case runs in a fresh process, which reports its own peak RSS (VmHWM); the sink is another process that
reads and discards the body. The files are sparse (their pixel data is a hole), so the disk is not the limit.
Target: peak RSS under 150 MB whatever the body size or number of files.

    python bench/memory.py [--gb 1.2] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

MB = 1024**2
TARGET_MB = 150


def write_large_instance(path: Path, pixel_bytes: int) -> None:
    """A DICOM P10 file whose Pixel Data element holds ``pixel_bytes`` zero bytes (a sparse hole on disk)."""
    template = get_testdata_file("CT_small.dcm")
    assert template is not None
    dataset = dcmread(template)
    del dataset.PixelData
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset.save_as(path, enforce_file_format=True)
    with path.open("r+b") as out:
        out.seek(0, 2)
        out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, pixel_bytes))
        out.truncate(out.tell() + pixel_bytes)


SINK = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        left = int(self.headers["Content-Length"])
        while left:
            left -= len(self.rfile.read(min(left, 1 << 20)))
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""

UPLOAD = r"""
import json, sys, time
from botocore.credentials import ReadOnlyCredentials
from airflow_hi_stow.transport.auth import SigV4StowAuth
from airflow_hi_stow.sources.instances import to_instance
from airflow_hi_stow.transport.client import StowClient

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
url, mode, files = sys.argv[1], sys.argv[2], sys.argv[3:]
auth = SigV4StowAuth(lambda: ReadOnlyCredentials("AKIDBENCH", "bench-secret", None), "us-east-1", mode)
client = StowClient(url, auth=auth)
instances = [to_instance(path) for path in files]
before = rss("VmHWM:")
started = time.monotonic()
result = client.store_batch(instances)
elapsed = time.monotonic() - started
print(json.dumps({"before_mb": before, "peak_mb": rss("VmHWM:"), "seconds": elapsed,
                  "sent": result.requests[0].sent_bytes, "status": result.status_code}))
"""


def run_case(url: str, mode: str, files: list[Path]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", UPLOAD, url, mode, *map(str, files)], capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.2, help="size of the large bodies in GB (default 1.2)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    total = int(args.gb * 1e9)
    work = Path(tempfile.mkdtemp(prefix="hi-stow-bench-"))
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        url = f"http://127.0.0.1:{sink.stdout.readline().strip()}"
        one_big = work / "one.dcm"
        write_large_instance(one_big, total)
        four = [work / f"quarter{i}.dcm" for i in range(4)]
        for path in four:
            write_large_instance(path, total // 4)
        many = [work / f"small{i:05d}.dcm" for i in range(int(total // (512 * 1024)))]
        for path in many:
            write_large_instance(path, 512 * 1024)
        small = [work / "small100.dcm"]
        write_large_instance(small[0], 100 * MB)
        cases = [
            ("1 file, 100 MB (reference)", "streaming", small),
            (f"1 file, {args.gb:g} GB", "streaming", [one_big]),
            (f"4 files, {args.gb:g} GB", "streaming", four),
            (f"{len(many)} files of 512 KiB, {args.gb:g} GB", "streaming", many),
            (f"4 files, {args.gb:g} GB", "aws-chunked", four),
            (f"4 files, {args.gb:g} GB", "sha256", four),
        ]
        rows = []
        for label, mode, files in cases:
            started = time.monotonic()
            measured = run_case(url, mode, files)
            print(f"{label:<32} {mode:<12} peak {measured['peak_mb']:.0f} MB ({time.monotonic() - started:.1f} s)")
            rows.append((label, mode, measured))
    finally:
        sink.terminate()
        sink.wait()
        if not args.keep:
            shutil.rmtree(work)
    worst = max(measured["peak_mb"] for _, _, measured in rows)
    table = [
        "| Body | Payload signing | Body bytes sent | Peak RSS before sending | Peak RSS | Time | Throughput |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, mode, measured in rows:
        table.append(
            f"| {label} | {mode} | {measured['sent'] / 1e9:.2f} GB | {measured['before_mb']:.0f} MB | "
            f"**{measured['peak_mb']:.0f} MB** | {measured['seconds']:.1f} s | "
            f"{measured['sent'] / measured['seconds'] / 1e6:.0f} MB/s |"
        )
    verdict = "met" if worst < TARGET_MB else "NOT met"
    body = (
        "Peak resident memory (VmHWM) of a fresh client process that signs and uploads one request to a loopback "
        "sink which discards the body. Files are sparse DICOM P10 files (pixel data is a hole on disk). The sha256 "
        "mode reads the files twice (hash, then send). Throughput here is a by-product: on this 2-core machine the "
        "client and the sink share the cores and loopback throughput varies between runs by up to 2x; upload "
        "speed against a verifying server is measured by the ingest benchmark.\n\n"
        + "\n".join(table)
        + f"\n\nTarget: peak RSS under {TARGET_MB} MB whatever the body size: **{verdict}** (worst {worst:.0f} MB)."
    )
    write_section("memory", "Client memory while uploading large bodies", "python bench/memory.py", body)
    return 0 if worst < TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
