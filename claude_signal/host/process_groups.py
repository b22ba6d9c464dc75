"""Killing a recorded ``claude`` process group safely, even after its parent worker died.

A pid can be reused; the start time (``/proc/<pid>/stat`` field 22, in clock ticks since boot) tells the
process we recorded from a stranger that got the same number.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def start_ticks(pid: int) -> int | None:
    """The process's start time, or None if it does not exist (or this is not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; everything after the last ')' is fixed.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def is_same_process(pid: int, ticks: int | None) -> bool:
    now = start_ticks(pid)
    return now is not None and (ticks is None or now == ticks)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_recorded_group(pid: int | None, pgid: int | None, ticks: int | None) -> bool:
    """SIGKILL the group if its leader is still the process we recorded; True if a signal was sent."""
    if not pgid or pgid <= 1:
        return False
    # If the leader is gone, members may live on (a Bash tool's children): a group id is never reused
    # while any member exists, so the group is still ours. If the pid now names another process, the
    # old group is empty (the kernel reused the number) and there is nothing to kill.
    leader_replaced = pid is not None and not is_same_process(pid, ticks)
    if leader_replaced and (start_ticks(pid) is not None or not group_alive(pgid)):
        return False
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True
