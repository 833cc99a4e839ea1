"""The emulator fixes glibc's mmap threshold, so that large buffers freed keep being returned to the system
(without it, the threshold rises to the largest block freed and later buffers fragment the heap)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# In a fresh interpreter: free one 8 MiB buffer (which, left alone, raises glibc's threshold to 8 MiB), then hold
# four of 5 MiB and print how many MiB glibc serves with mappings of their own (mallinfo2's hblkhd).
PROBE = """
import ctypes, sys
from airflow_hi_stow.emulator.allocator import pin_mmap_threshold
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "pinned":
    assert pin_mmap_threshold()
large = bytearray(8 * 2**20)
del large
held = [bytearray(5 * 2**20) for _ in range(4)]
print(libc.mallinfo2().hblkhd // 2**20)
"""


def mapped_mib(mode: str) -> int:
    run = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(run.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt and mallinfo2 are glibc's")
def test_large_buffers_stay_in_their_own_mappings_once_the_threshold_is_pinned() -> None:
    assert mapped_mib("dynamic") == 0  # glibc's default: the 5 MiB buffers went to the heap
    assert mapped_mib("pinned") == 20
