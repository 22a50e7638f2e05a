"""The unit's clock as the kernel's NTP discipline sees it: synchronised, offset, maximum error.

Every read carries whether the clock was synchronised, and the status heartbeat the
offset and error bound, so a back office can tell a read's time from a drifting unit's.
Read with adjtimex(2) in query mode (no privilege needed, nothing changed).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from functools import lru_cache

_TIME_ERROR = 5  # adjtimex state: clock not synchronised
_STA_NANO = 0x2000  # offset is in nanoseconds, not microseconds


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; ctypes lays out the padding as the C compiler does.
    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
        ("reserved", ctypes.c_int * 11),
    ]


@dataclass(frozen=True)
class ClockState:
    synced: bool | None  # None: this unit cannot tell
    offset_ms: float | None = None  # estimated offset from true time
    max_error_ms: float | None = None  # the kernel's bound on the error


@lru_cache(maxsize=1)
def _adjtimex():
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True).adjtimex if name else None


def clock_state() -> ClockState:
    try:
        adjtimex = _adjtimex()
    except (OSError, AttributeError):
        return ClockState(None)
    if adjtimex is None:
        return ClockState(None)
    tx = _Timex()
    state = adjtimex(ctypes.byref(tx))
    if state < 0:
        return ClockState(None)
    offset_ms = tx.offset / (1e6 if tx.status & _STA_NANO else 1e3)
    return ClockState(state != _TIME_ERROR, round(offset_ms, 3), round(tx.maxerror / 1e3, 3))
