"""``claude-signal up``'s supervisor with real child processes: restart on a crash, stop everything."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from claude_signal.supervisor import Child, Supervisor
from tests.harness import wait_until

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
STUBBORN = [sys.executable, "-c", "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "pathlib.Path(sys.argv[1]).touch(); time.sleep(600)"]


def test_crashed_child_is_restarted_and_all_stop_on_request() -> None:
    children = [Child("a", SLEEPER), Child("b", SLEEPER)]
    supervisor = Supervisor(children, max_backoff=0.2)
    runner = threading.Thread(target=supervisor.run, kwargs={"poll": 0.05})
    runner.start()
    try:
        wait_until(lambda: all(c.alive() for c in children), message="children to start")
        first_pid = children[0].proc.pid  # type: ignore[union-attr]
        os.kill(first_pid, signal.SIGKILL)
        wait_until(lambda: children[0].alive() and children[0].proc.pid != first_pid,  # type: ignore[union-attr]
                   timeout=10, message="the crashed child to be restarted")
        assert children[0].restarts == 1 and children[1].restarts == 0
    finally:
        supervisor.request_stop()
        runner.join(30)
    assert not any(c.alive() for c in children)


def test_child_that_ignores_sigterm_is_killed_after_its_timeout(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = Child("stubborn", [*STUBBORN, str(ready)], stop_timeout=0.5)
    child.start()
    wait_until(ready.exists, message="the child to ignore SIGTERM")
    child.stop()
    assert not child.alive() and child.proc is not None and child.proc.returncode == -signal.SIGKILL
