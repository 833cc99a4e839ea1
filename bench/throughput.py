"""Upload throughput of ``hi-stow store`` against its peers, into a strict SigV4-verifying loopback sink
(bench/sink.py), contenders interleaved in each round so that their ratios are measured under the same load.

Workloads: 10,000 instances of 40 KB, 200 of 5 MB, one of ~0.9 GB (multi-frame). Contenders: the engine
(``hi-stow store``, the whole process) in each payload signing mode; ``curl --aws-sigv4`` sending the same bytes,
one request per file and as pre-built multipart bodies over one connection (the ceiling: no reading of headers,
no hashing, no Python); dicomweb-client with requests-aws4auth, installed in build/peers-venv. Also the SHA-256
rate of this machine, which bounds the sha256 and aws-chunked modes.

    python bench/throughput.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section
from workloads import Body, multiframe_instances, multipart_bodies, small_instances

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS_VENV = REPO / "build" / "peers-venv"
PEERS = ("dicomweb-client==0.61.2", "requests-aws4auth==1.4.0")
HI_STOW = Path(sys.executable).with_name("hi-stow")
REGION = "us-east-1"
ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}
MODES = ("streaming", "aws-chunked", "sha256")
CEILING = "curl, pre-built multipart bodies, 1 connection (the ceiling)"
PEER = "dicomweb-client + requests-aws4auth"


@dataclass
class Measure:
    seconds: float
    cpu: float
    """User + system seconds of the client process."""
    rss_mb: float
    sink_cpu: float
    error: str | None = None
    instances: int = 0
    """How many of the workload's files this run sent (0: all of them)."""
    size: int = 0


@dataclass
class Workload:
    name: str
    root: Path
    """The folder that holds the files (what the engine is given)."""
    files: list[Path]
    per_request: int
    bodies: list[Body]
    connections: int = 4
    peer_files: int | None = None
    """dicomweb-client stores only this many of the files (it is slow: its rate is per instance all the same)."""
    results: dict[str, list[Measure]] = field(default_factory=dict)
    bytes: int = 0

    def __post_init__(self) -> None:
        self.bytes = sum(path.stat().st_size for path in self.files)


class Sink:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(BENCH / "sink.py")], stdout=subprocess.PIPE, text=True, env=ENV
        )
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{self.process.stdout.readline().strip()}"

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def run(command: list[str], sink: Sink, output: Path) -> tuple[Measure, str]:
    """Run a client process; its CPU from wait4, its peak RSS from GNU time (a child forked from this process
    would report this process's own peak as its floor)."""
    sink_before = sink.cpu()
    peak = output.with_suffix(".rss")
    started = time.perf_counter()
    with output.open("w") as out:
        process = subprocess.Popen(
            ["/usr/bin/time", "-f", "%M", "-o", str(peak), *command], stdout=out, stderr=subprocess.STDOUT, env=ENV
        )
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    text = output.read_text()
    error = None if process.returncode == 0 else f"exit status {process.returncode}: {text[-300:]}"
    rss_mb = int(peak.read_text().split()[-1]) / 1024
    measure = Measure(seconds, usage.ru_utime + usage.ru_stime, rss_mb, sink.cpu() - sink_before, error)
    return measure, text


def engine(mode: str, records: bool = False) -> Callable[[Workload, Sink, Path], Measure]:
    """``hi-stow store``; with ``records``, keeping a manifest and a resume ledger (``--manifest-dir``, fresh for
    each run), as StoreDicomOperator always does: each local file is then hashed as it is sent."""

    def contender(workload: Workload, sink: Sink, work: Path) -> Measure:
        folder = workload.root
        command = [str(HI_STOW), "store", "--endpoint-url", sink.url, "--region", REGION, "--datastore-id", "bench"]
        command += ["--quiet", "--batch-instances", str(workload.per_request), "--connections"]
        command += [str(workload.connections), "--payload-signing", mode, str(folder)]
        kept = work / "records"
        shutil.rmtree(kept, ignore_errors=True)
        measure, _ = run([*command, "--manifest-dir", str(kept)] if records else command, sink, work / "engine.out")
        shutil.rmtree(kept, ignore_errors=True)
        return measure

    return contender


def engine_in_process(records: bool) -> Callable[[Workload, Sink, Path], Measure]:
    """The engine timed inside a running process (bench/engine_in_process.py), as the Airflow classes run it in a
    task that has imported the providers already: with ``records``, a manifest and a resume ledger
    (StoreDicomOperator), else none (the hooks' ``store_instances``)."""

    def contender(workload: Workload, sink: Sink, work: Path) -> Measure:
        kept = work / "records"
        shutil.rmtree(kept, ignore_errors=True)
        command = [sys.executable, str(BENCH / "engine_in_process.py"), sink.url, str(workload.root)]
        command += [str(kept) if records else "-", str(workload.per_request), str(workload.connections)]
        measure, text = run(command, sink, work / "in-process.out")
        shutil.rmtree(kept, ignore_errors=True)
        if measure.error is None:
            reported = json.loads(text.strip().splitlines()[-1])
            measure.seconds, measure.cpu = reported["seconds"], reported["cpu"]
            unstored = sum(count for outcome, count in reported["counts"].items() if outcome != "stored")
            if unstored:
                measure.error = f"{unstored} file(s) not stored: {reported['counts']}"
        return measure

    return contender


def _curl_config(target: Path, url: str, requests: list[tuple[Path, int, str]]) -> None:
    """One request per (file, length, content type), all over one connection."""
    lines = []
    for path, length, content_type in requests:
        lines += [
            f'url = "{url}/datastore/bench/studies"',
            'request = "POST"',
            f'aws-sigv4 = "aws:amz:{REGION}:medical-imaging"',
            'user = "test:test"',
            'header = "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD"',
            f'header = "x-amz-decoded-content-length: {length}"',
            f'header = "Content-Type: {content_type}"',
            'header = "Accept: application/dicom+json"',
            f'upload-file = "{path}"',
            'output = "/dev/null"',
            'write-out = "%{http_code}\\n"',
            "next",
        ]
    target.write_text("\n".join(lines[:-1]) + "\n")


def curl(per_file: bool) -> Callable[[Workload, Sink, Path], Measure]:
    def contender(workload: Workload, sink: Sink, work: Path) -> Measure:
        config = work / ("curl-files.conf" if per_file else "curl-bodies.conf")
        if per_file:
            requests = [(path, path.stat().st_size, "application/dicom") for path in workload.files]
        else:
            requests = [
                (body.path, body.length, f'multipart/related; type=\\"application/dicom\\"; boundary={body.boundary}')
                for body in workload.bodies
            ]
        _curl_config(config, sink.url, requests)
        measure, text = run(["curl", "--silent", "--show-error", "-K", str(config)], sink, work / "curl.out")
        answered = text.split()
        if measure.error is None and answered.count("200") != len(requests):
            measure.error = f"{len(requests) - answered.count('200')} request(s) not answered 200"
        return measure

    return contender


def dicomweb_client(chunk_size: int) -> Callable[[Workload, Sink, Path], Measure]:
    def contender(workload: Workload, sink: Sink, work: Path) -> Measure:
        files = workload.files[: workload.peer_files]
        listing = work / "files.txt"
        listing.write_text("\n".join(map(str, files)))
        command = [str(PEERS_VENV / "bin" / "python"), str(BENCH / "peer_dicomweb_client.py")]
        command += [f"{sink.url}/datastore/bench", str(chunk_size), str(workload.per_request), str(listing)]
        measure, text = run(command, sink, work / "dwc.out")
        reported = json.loads(text.strip().splitlines()[-1]) if text.strip() else {}
        measure.error = measure.error or reported.get("error")
        measure.instances, measure.size = len(files), sum(path.stat().st_size for path in files)
        return measure

    return contender


def peers_venv() -> None:
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEERS], check=True)


def sha256_seconds_per_gb() -> float:
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(512):
        digest.update(block)
    return (time.perf_counter() - started) / (512 * 2**20 / 1e9)


def median_spread(values: list[float], digits: int = 0) -> str:
    if len(values) == 1:
        return f"{values[0]:,.{digits}f}"
    return f"{statistics.median(values):,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def table(workload: Workload) -> str:
    count, total = len(workload.files), workload.bytes
    ceiling = workload.results[CEILING]
    peer = workload.results.get(PEER)
    lines = [
        f"**{workload.name}**: {count:,} file(s), {total / 1e6:,.0f} MB; {workload.per_request} instance(s) per "
        f"request (engine, multipart bodies, dicomweb-client calls); engine with {workload.connections} connections.",
        "",
        "| Contender | Instances/s | MB/s | Ratio to the ceiling | Ratio to dicomweb-client | Client CPU s/GB | "
        "Client CPU s per 1,000 | Peak RSS | Sink CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in workload.results.items():
        if any(run.error for run in runs):
            lines.append(f"| {name} | failed: {next(run.error for run in runs if run.error)} | | | | | | | |")
            continue
        sent, sent_bytes = runs[0].instances or count, runs[0].size or total
        rates = [sent / run.seconds for run in runs]
        to_ceiling = [rate / (count / ceiling[i].seconds) for i, rate in enumerate(rates)]
        peer_rates = [(p.instances or count) / p.seconds for p in peer] if peer else []
        to_peer = (
            median_spread([rate / peer_rates[i] for i, rate in enumerate(rates)], 1) + "x"
            if peer and not any(p.error for p in peer)
            else "-"
        )
        cpu = [run.cpu for run in runs]
        note = f" ({sent:,} of the files)" if sent != count else ""
        lines.append(
            f"| {name}{note} | {median_spread(rates)} | "
            f"{median_spread([sent_bytes / 1e6 / run.seconds for run in runs])} | "
            f"{median_spread(to_ceiling, 2)} | {to_peer} | {statistics.median(cpu) / (sent_bytes / 1e9):.2f} | "
            f"{statistics.median(cpu) / sent * 1000:.2f} | {max(run.rss_mb for run in runs):.0f} MB | "
            f"{statistics.median(run.sink_cpu for run in runs):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and smaller workloads, one round")
    parser.add_argument("--repeats", type=int, help="rounds (default: 3, 1 with --quick)")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    load = os.getloadavg()[0]
    peers_venv()
    sha_rate = sha256_seconds_per_gb()
    work = Path(tempfile.mkdtemp(prefix="hi-stow-throughput-", dir=REPO / "build"))
    sink = Sink()
    try:
        small = small_instances(work / "small", 2_000 if args.quick else 10_000)
        large = multiframe_instances(work / "large", 40 if args.quick else 200, 10, "ct-5mb")
        huge = multiframe_instances(work / "huge", 1, 360 if args.quick else 1_800, "ct-multiframe")
        workloads = [
            Workload(
                "40 KB instances",
                work / "small",
                small,
                50,
                multipart_bodies(small, 50, 100 << 20, work / "b-small"),
                peer_files=len(small) // 5,
            ),
            Workload(
                "5 MB instances", work / "large", large, 20, multipart_bodies(large, 20, 100 << 20, work / "b-large")
            ),
            Workload(
                f"one multi-frame instance of {huge[0].stat().st_size / 1e9:.2f} GB",
                work / "huge",
                huge,
                1,
                multipart_bodies(huge, 1, 1 << 30, work / "b-huge"),
            ),
        ]
        contenders: dict[str, Callable[[Workload, Sink, Path], Measure]] = {
            CEILING: curl(per_file=False),
            "curl, one request per file, 1 connection": curl(per_file=True),
            **{f"hi-stow store, {mode}": engine(mode) for mode in MODES},
            "hi-stow store, streaming, with a manifest and a resume ledger (as the operator)": engine(
                "streaming", records=True
            ),
            "the engine in a running process, no records (the hooks' store_instances)": engine_in_process(False),
            "the engine in a running process, with a manifest and a resume ledger (StoreDicomOperator)": (
                engine_in_process(True)
            ),
            PEER: dicomweb_client(chunk_size=1 << 40),
        }
        default_peer = dicomweb_client(0)(Workload("default", work / "small", small[:50], 50, []), sink, work)
        for round_number in range(repeats):
            for workload in workloads:
                for name, contender in contenders.items():
                    measure = contender(workload, sink, work)
                    workload.results.setdefault(name, []).append(measure)
                    rate = (measure.instances or len(workload.files)) / measure.seconds
                    print(
                        f"round {round_number + 1} {workload.name}: {name}: {rate:,.0f} instances/s, "
                        f"cpu {measure.cpu:.2f} s{', ' + measure.error if measure.error else ''}",
                        flush=True,
                    )
    finally:
        sink.stop()
        shutil.rmtree(work, ignore_errors=True)
    shared = (
        f"The machine's two cores were shared with other work while this ran (load average {load:.1f} when it "
        "started), so absolute rates vary from run to run; the ratios, measured in the same round, vary less."
        if load > 0.5
        else f"The machine was otherwise idle (load average {load:.1f} when it started)."
    )
    body = "\n\n".join(
        [
            "Every contender sends the same files to the same sink (bench/sink.py: SigV4 verified with the "
            "emulator's verifier, aws-chunked chunk signatures and sha256 bodies checked, each part's SOP "
            "Instance UID read and answered in a Store Instances Response; nothing stored), on loopback, "
            f"interleaved in each of {repeats} round(s); medians with the range in brackets. "
            "`hi-stow store` is timed as a whole process (start-up, listing, headers, sending); client CPU is "
            "the client process's user + system time, peak RSS its VmHWM. The engine in a running process is "
            "timed from the client's construction to the end of the import, as the operator and the hooks run "
            "it in a task that has imported botocore and requests already (bench/engine_in_process.py; its CPU "
            "is the process's over the same span). The ceiling is curl sending "
            "pre-built multipart bodies of the same files over one connection (what the sink can take). "
            f"SHA-256 on this machine: {sha_rate:.2f} s/GB ({1 / sha_rate:.2f} GB/s, one core). Versions: "
            f"{_versions()}. {shared}",
            f"dicomweb-client at its default `chunk_size` (1 MB): {_default_peer(default_peer)}. Measured below "
            "with `chunk_size` larger than any body, so that each call's body is one bytes object that "
            "requests-aws4auth can hash (its sha256 mode).",
            *(table(workload) for workload in workloads),
        ]
    )
    command = "python bench/throughput.py" + (" --quick" if args.quick else "")
    write_section("upload-throughput", "Upload throughput against the peers (loopback sink)", command, body)


def _versions() -> str:
    import pydicom

    from airflow_hi_stow import __version__

    curl_version = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split()[1]
    peers = ", ".join(PEERS).replace("==", " ")
    return f"airflow-hi-stow {__version__} (pydicom {pydicom.__version__}), curl {curl_version}, {peers}"


def _default_peer(measure: Measure) -> str:
    if measure.error is None:
        return f"50 instances stored in {measure.seconds:.1f} s"
    return f"one call of 50 instances (2 MB) failed after {measure.seconds:.0f} s with `{measure.error}`"


if __name__ == "__main__":
    main()
