"""``claude-signal beat``: Celery beat, which only ticks ``schedules.tick`` every ``SCHEDULE_TICK`` seconds.

The schedules live in the database, so beat keeps nothing: it runs Celery's in-memory scheduler (no
``celerybeat-schedule`` file to lose or corrupt), and several beats (one per machine, or two by mistake)
only tick more often, never run an occurrence twice.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from claude_signal.config import Settings
from claude_signal.ops.supervisor import Child

IN_MEMORY_SCHEDULER = "celery.beat:Scheduler"


def argv() -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "claude_signal", "beat", "-S", IN_MEMORY_SCHEDULER,
            "-l", os.environ.get("CLAUDE_SIGNAL_LOG_LEVEL", "info")]


def child(env: dict[str, str], logs: Path | None) -> Child:
    """Beat as a supervised child of ``claude-signal up``."""
    return Child("beat", argv(), env, logs / "beat.log" if logs else None)


def run(settings: Settings) -> int:
    from claude_signal.wire.signing import load_key

    load_key(settings)  # what beat publishes is signed; a key problem is one line now
    os.execvp(sys.executable, argv())
    return 0  # not reached
