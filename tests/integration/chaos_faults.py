"""The faults the chaos tests inject: SIGKILL of one process of the running system, then its restart."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

from tests.harness import HostWorkers
from tests.integration.conftest import System

FAULTS = ("listener", "control main", "pool process", "turn plane", "redis")


class Faults:
    def __init__(self, system: System, workers: HostWorkers, rng: random.Random) -> None:
        self.system = system
        self.workers = workers
        self.rng = rng

    def strike(self, fault: str | None = None) -> str:
        """Kill one process (``fault``, or one chosen at random) and start it again; says which."""
        fault = fault or self.rng.choice(FAULTS)
        match fault:
            case "listener":
                for listener in self.system.listeners:
                    listener.discard()
                self.system.listener()
            case "control main":
                self.workers.control.kill9()
                self.workers.control.start()
            case "pool process":
                children = _children(self.workers.control.pid)
                if children:
                    os.kill(self.rng.choice(children), signal.SIGKILL)  # the main process forks another
            case "turn plane":
                self.workers.turns.kill9()
                self.workers.turns.start()
            case "redis":
                redis = self.system.redis
                assert redis.proc is not None
                redis.proc.kill()
                redis.proc.wait(10)
                redis.proc = None
                redis.start()
        return fault

    def heal(self) -> None:
        """Every process running again (a kill may have left one down)."""
        for plane in self.workers.planes:
            if plane.proc is None or plane.proc.poll() is not None:
                plane.start()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []
