"""The time zone schedules are read in: ``CLAUDE_SIGNAL_TIMEZONE``, else the machine's own.

Python's ``astimezone()`` gives the machine's current offset only, which is wrong across a DST change, so
the machine's zone is found by name (``TZ``, ``/etc/timezone``, the ``/etc/localtime`` link), else UTC.
"""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def machine_zone() -> str:
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    timezone_file = Path("/etc/timezone")
    if timezone_file.exists():
        candidates.append(timezone_file.read_text().strip())
    localtime = Path("/etc/localtime")
    if localtime.is_symlink():
        target = str(localtime.resolve())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    for name in candidates:
        if name and is_zone(name):
            return name
    return "UTC"


def is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def zone(name: str) -> ZoneInfo:
    """The zone a schedule recorded; UTC when this machine does not know it (a bad row must not stop beat)."""
    return ZoneInfo(name) if is_zone(name) else ZoneInfo("UTC")
