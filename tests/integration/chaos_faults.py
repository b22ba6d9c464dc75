"""The faults the chaos tests inject: SIGKILL of one process of the running system, then its restart."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

from tests.harness import HostWorkers, wait_until
from tests.integration.conftest import System

FAULTS = ("listener", "control main", "pool process", "turn plane", "redis")


class Faults:
    def __init__(self, system: System, workers: HostWorkers, rng: random.Random) -> None:
        self.system = system
        self.workers = workers
        self.rng = rng
        self.last_sent: str | None = None  # the key of the last message sent to the listener

    def sent(self, key: str) -> None:
        self.last_sent = key

    def strike(self, fault: str | None = None) -> str:
        """Kill one process (``fault``, or one chosen at random) and start it again; says which."""
        fault = fault or self.rng.choice(FAULTS)
        match fault:
            case "listener":
                self._journaled(self.last_sent)
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

    def _journaled(self, key: str | None) -> None:
        """Wait until the listener has journaled ``key``. A frame signal-cli-rest-api pushed to a listener
        that dies before journaling it is gone (json-rpc mode keeps no copy: signal-cli-rest-api.md, known
        problem 2), whatever the listener does; so the kill lands once what was sent is the listener's to
        keep, and the test judges what the system can keep. The kill still cuts every later step: publish,
        the broker's hand-off, the inbox's acknowledgement."""
        if key is None:
            return
        listeners = self.system.listeners
        wait_until(lambda: any(f"queued {key} " in listener.log() for listener in listeners), timeout=60,
                   message=f"the listener to journal {key}")

    def heal(self) -> None:
        """Every process running again (a kill may have left one down)."""
        for plane in self.workers.planes:
            if plane.proc is None or plane.proc.poll() is not None:
                plane.start()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []
