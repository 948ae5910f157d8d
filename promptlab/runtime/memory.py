"""Keeping a long-running process's memory flat: glibc's malloc told to give freed memory back.

A server answering batches of varying shapes frees and allocates tensors of ever different sizes. glibc
serves a block of at least the mmap threshold (128 KiB at start) with its own mmap, returned to the system
when freed; but each time such a block is freed the threshold rises to its size (up to 32 MiB), and the
heap is trimmed only past twice that, so later tensors come from the heap arenas, whose holes of mixed
sizes are kept rather than returned: the resident size grows with the variety of shapes seen.
`malloc_trim(0)` after each batch hands every free page of every arena back at once. It keeps the
resident size as flat as fixing the mmap threshold does, and costs a 135M model's forwards far less:
the fixed threshold maps and unmaps every large tensor of every forward (docs/serving.md measures both).
Other allocators (musl, macOS) are left alone.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


@cache
def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):  # no C library found, or one without malloc_trim
        return None


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system; whether any were returned (False where not glibc)."""
    trim = _malloc_trim()
    return bool(trim and trim(0))
