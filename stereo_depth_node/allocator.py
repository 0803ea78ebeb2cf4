"""Keep freed memory in the process, so that each frame reuses the pages of the one before.

glibc hands blocks above its mmap threshold back to the kernel when they are freed, and trims the
top of its heaps. A node that builds image-sized buffers every frame (decoded views, maps, the
output messages, and in rclpy each received image) then faults them in again, page by page: a
640x480 SGBM set in the node cost 1,400-2,400 minor page faults, 2-3 ms on the 2-core
development machine (docs/benchmarks.md). With blocks up to FRAME_BLOCK_BYTES served from the
heap and the heap trimmed only past TRIM_BYTES, the same set costs about 130.

What it costs: memory freed after a peak stays in the process (its resident size stays near the
peak instead of falling back), which for a node that meets the same frame size every time is
the memory its next frame needs anyway. Blocks larger than FRAME_BLOCK_BYTES (a network's 3-D
volumes on the CPU) are still returned at once.
"""
from __future__ import annotations

import ctypes
import os
import platform

# mallopt parameter numbers, <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
FRAME_BLOCK_BYTES = 64 << 20
TRIM_BYTES = 1 << 30


def keep_freed_memory() -> str:
    """Apply the thresholds above; returns what was done, for the log. Only on glibc, and not
    when GLIBC_TUNABLES already sets malloc tunables (the user's setting wins)."""
    if platform.libc_ver()[0] != "glibc":
        return "left to the C library (not glibc)"
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return "as GLIBC_TUNABLES sets it"
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    # Some glibc versions cap the threshold at half their 64 MiB heap size; 32 MiB still holds
    # a 1280x720 frame's largest message (14.7 MB of points).
    block = next((size for size in (FRAME_BLOCK_BYTES, FRAME_BLOCK_BYTES // 2)
                  if mallopt is not None and mallopt(M_MMAP_THRESHOLD, size)), None)
    if block is None or not mallopt(M_TRIM_THRESHOLD, TRIM_BYTES):
        return "left to glibc (mallopt refused the thresholds)"
    return (f"freed blocks up to {block >> 20} MiB kept for reuse "
            f"(heap trimmed past {TRIM_BYTES >> 30} GiB)")
