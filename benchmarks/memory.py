"""Resident memory (RSS) of this process: now, its peak, and restarting the peak.

Used by the ``epoch_time.py`` workers: each reports its own peak, and the memory
worker measures how far tinycnn's training pushes the peak above a baseline.
"""

from __future__ import annotations

import resource
import sys


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far, in MB (10^6 bytes).

    ``ru_maxrss``: a child process inherits its parent's value, so a worker
    prefers ``own_peak_rss_mb``.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6  # bytes vs KiB


def proc_status_mb(field: str) -> float | None:
    """``VmRSS`` (now) or ``VmHWM`` (peak) from /proc/self/status in MB; None off Linux.

    Unlike ``ru_maxrss``, which a child process inherits from the parent that
    started it, these describe only this process's own memory.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024 / 1e6  # the value is in kB
    except OSError:
        pass
    return None


def own_peak_rss_mb() -> float:
    """This process's own peak RSS in MB: VmHWM on Linux, ``ru_maxrss`` elsewhere."""
    return proc_status_mb("VmHWM") or peak_rss_mb()


def reset_peak_rss() -> bool:
    """Make the peak (VmHWM) restart from the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False
