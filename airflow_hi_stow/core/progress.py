"""Progress of an import as one log line: files and bytes done, rate, ETA. Never names a file or a patient."""

from __future__ import annotations

from dataclasses import dataclass


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


@dataclass
class Progress:
    """Work to do and done, measured from ``started`` (a monotonic clock reading)."""

    total_files: int
    total_bytes: int
    started: float
    files_done: int = 0
    bytes_done: int = 0

    def add(self, files: int, size: int) -> None:
        self.files_done += files
        self.bytes_done += size

    def exclude(self, files: int, size: int) -> None:
        """Work found not to be done after all (files rejected, or stored by an earlier try)."""
        self.total_files -= files
        self.total_bytes -= size

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.bytes_done / elapsed
        share = self.bytes_done / self.total_bytes if self.total_bytes else 1.0
        text = (
            f"{self.files_done}/{self.total_files} files, "
            f"{self.bytes_done / 1e6:.1f}/{self.total_bytes / 1e6:.1f} MB ({share:.0%}) in {format_duration(elapsed)}, "
            f"{rate / 1e6:.2f} MB/s, {self.files_done / elapsed:.1f} files/s"
        )
        remaining = self.total_bytes - self.bytes_done
        if remaining > 0 and rate > 0:
            text += f", ETA {format_duration(remaining / rate)}"
        return text
