"""The C heap of a training process: keep freed memory for the next step instead of returning it to the OS.

A training step allocates and frees the same large tensors over and over. glibc's malloc, left alone, serves blocks
above a threshold that it moves while the program runs from fresh ``mmap`` pages and returns freed heap tops to the
OS, so many steps pay page faults and zeroing for memory they had a moment ago, how many depending on the allocation
history (docs/speed.md has the measured cost). Fixing both thresholds, as the
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` environment variables would, keeps that memory in the
process. Memory already used stays reserved until the process ends, which a training process does not miss.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters of glibc's malloc.h
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest: blocks above it still come from mmap and go back on free
TRIM_THRESHOLD = 2**31 - 1  # keep up to 2 GiB of free heap top (mallopt takes an int)
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_done = False


def keep_freed_memory() -> bool:
    """Fix glibc malloc's mmap and trim thresholds for this process (once); True if they are set now.

    Nothing is changed off Linux, under another C library or allocator (``LD_PRELOAD``, e.g. jemalloc or tcmalloc),
    or when the user set any of glibc's ``MALLOC_*`` tuning variables: their choice stands.
    """
    global _done
    if _done:
        return True
    if sys.platform != "linux" or any(os.environ.get(k) for k in _ENV) or os.environ.get("LD_PRELOAD"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
