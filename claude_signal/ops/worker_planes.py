"""The two worker planes of a host as command lines and supervised children (``worker`` and ``up``)."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from claude_signal.config import Settings

PLANES = ("control", "turns")


def worker_argv(settings: Settings, plane: str, name: str, concurrency: int, extra: Sequence[str]) -> list[str]:
    """The ``celery worker`` command line of one plane on this host.

    control: prefork processes for the shared queue (commands, replies) and this host's short work (start,
    resume, recovery); turns: one thread per turn slot (a turn mostly waits on its ``claude`` child) for
    this host's turn queue. Node names are unique per process, so identical workers never collide.
    """
    from claude_signal.wire.queues import SHARED_QUEUE, SIGNAL_QUEUE, host_queue, turn_queue

    node = f"{name}-{plane}-{secrets.token_hex(3)}@{settings.host}"
    if plane == "turns":
        pool = ["-P", "threads", "-c", str(settings.max_turns), "-Q", turn_queue(settings.host)]
    else:
        # In order of precedence (celeryconfig's queue_order_strategy): replies never wait behind a burst
        # of inbound commands, nor a host's short work.
        queues = [*([SIGNAL_QUEUE] if settings.signal_sender else []), host_queue(settings.host), SHARED_QUEUE]
        pool = ["-P", "prefork", "-c", str(concurrency), "-Q", ",".join(queues)]
    events = ["-E"] if settings.task_events else []
    return ["celery", "-A", "claude_signal", "worker", "-n", node, *pool, *events,
            "-l", os.environ.get("CLAUDE_SIGNAL_LOG_LEVEL", "info"), *extra]


def plane_children(settings: Settings, name: str, concurrency: int, env: dict[str, str], logs: Path | None,
                   extra: Sequence[str] = ()):  # type: ignore[no-untyped-def]
    """Both planes of this host as supervised children: ``claude-signal worker`` and ``up`` run these."""
    from claude_signal.ops.supervisor import Child

    me = [sys.executable, "-m", "claude_signal.ops.cli", "worker", "--name", name, "--concurrency", str(concurrency)]
    return [Child(f"{plane} worker", [*me, "--plane", plane, *extra], env,
                  logs / f"{plane}-worker.log" if logs else None,
                  stop_timeout=60.0 if plane == "turns" else 30.0)  # turns interrupt themselves on a clean stop
            for plane in PLANES]
