"""A fixed mmap threshold for glibc's allocator, so that a long-running emulator's memory stays flat.

glibc serves allocations above its mmap threshold (128 KiB at first) with mappings of their own, returned to the
system when freed, but raises the threshold to the size of each such block freed (up to 32 MiB). Once a block of
several megabytes had been freed, the emulator's large request buffers came from its heaps, which fragmented: under
sustained load its resident memory grew by a quarter in five minutes while Python's own allocations (tracemalloc)
stayed flat, and malloc_trim(3) did not give it back. A threshold set explicitly turns that adjustment off
(mallopt(3)). At 4 MiB the buffers of a request's pieces (up to a few hundred KiB) still come from the heap, and
only rare larger blocks are mapped: memory stays flat at a cost of at most about a fifth of the emulator's time on
5 MB instances and none measurable on 40 KB ones (see docs/reliability.md); at glibc's 128 KiB every piece received
would be mapped and unmapped, which cost the 5 MB ingest more than half its speed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
"""mallopt's parameter number for the threshold (glibc's malloc.h)."""
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024


def pin_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold at MMAP_THRESHOLD_BYTES; False (nothing changed) where the C library is not
    glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    pinned = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    if not pinned:
        log.debug("mallopt(M_MMAP_THRESHOLD) was refused; the allocator keeps its dynamic threshold")
    return pinned
