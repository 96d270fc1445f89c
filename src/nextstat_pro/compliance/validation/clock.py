"""Whether the kernel's clock is synchronised (Linux ``adjtimex``), for the installation qualification.

``adjtimex`` with no modes set only reads: it returns the clock state, ``TIME_ERROR`` (5) when the
kernel's clock is not synchronised to a time source (no NTP/PTP daemon disciplines it). Elsewhere
the answer is unknown (None), which the IQ reports as such rather than guessing."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

TIME_ERROR = 5
_TIMEX_BYTES = 512  # struct timex is 208 bytes on 64-bit Linux; a larger zeroed buffer is safe


def kernel_clock_synchronised() -> bool | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buf = ctypes.create_string_buffer(_TIMEX_BYTES)  # modes = 0: read the state, change nothing
        state = int(libc.adjtimex(buf))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR
