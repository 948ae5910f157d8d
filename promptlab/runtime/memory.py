"""Keeping a long-running process's memory flat: glibc's malloc told to give large blocks back.

A server answering batches of varying shapes frees and allocates tensors of ever different sizes. glibc
serves a block of at least the mmap threshold (128 KiB at start) with its own mmap, returned to the system
when freed; but each time such a block is freed the threshold rises to its size (up to 32 MiB), and the
heap is trimmed only past twice that, so later tensors come from the heap arenas, whose holes of mixed
sizes are kept rather than returned: the resident size grows with the variety of shapes seen. Fixing the
threshold (mallopt) turns that adjustment off, so every tensor of 1 MiB or more is mapped and unmapped
whole. 1 MiB rather than glibc's 128 KiB: the smaller tensors, reused at once, stay in the heap and cost
no page faults (docs/serving.md shows the measurement). Other allocators (musl, macOS) are left alone.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 1024 * 1024


def map_large_blocks(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Serve every allocation of at least `threshold` bytes with its own mapping from now on; whether glibc
    took the setting."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # no C library found, or one without mallopt
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
