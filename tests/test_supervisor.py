"""``claude-signal up``'s supervisor with real child processes: restart on a crash, stop everything."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from claude_signal.ops.supervisor import Child, Supervisor
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


def _crash(child: Child) -> None:
    assert child.proc is not None
    os.kill(child.proc.pid, signal.SIGKILL)
    child.proc.wait(10)


def test_backoff_resets_after_a_stable_run() -> None:
    """Five crashes once made every later restart wait 16-30 s, however long the child had run."""
    child = Child("a", SLEEPER)
    supervisor = Supervisor([child], max_backoff=30.0, stable_after=60.0)
    child.start()
    try:
        for _ in range(5):  # crashes in a row: the pause grows
            _crash(child)
            supervisor._tend()
            child.next_start = 0.0  # skip the pause itself: the test looks at the count, not the clock
            child.start()
        assert child.restarts == 5
        child.started_at -= 61.0  # as if this run had lasted a minute
        _crash(child)
        supervisor._tend()
        assert child.restarts == 1
        assert child.next_start - time.monotonic() <= 1.0  # the first pause again, not 16 s
    finally:
        child.stop()
