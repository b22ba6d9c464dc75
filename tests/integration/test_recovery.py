"""Crash recovery on worker_ready and by lease expiry, with real worker processes killed by SIGKILL."""

from __future__ import annotations

from claude_signal.db.models import SessionStatus
from tests.harness import wait_until
from tests.integration.conftest import System
from tests.integration.helpers import one_session, sessions, transitions


def start(system: System, project: str = "shop") -> str:
    system.publisher.send(f"/session start {system.projects / project}")
    system.wait_reply(lambda t: t.startswith("Started session") and project in t)
    return next(s for s in sessions(system.engine) if s.project_path.endswith(project)).id


def paused_notices(system: System) -> list[str]:
    return [t for t in system.replies() if t.startswith("The worker running these sessions stopped")]


def test_restart_after_kill_pauses_and_notifies_once(system: System) -> None:
    worker = system.worker()
    shop, blog = start(system, "shop"), start(system, "blog")
    worker.kill9()
    system.worker()  # same node name, new incarnation: recovery runs from worker_ready
    (notice,) = system.wait_reply(lambda t: t.startswith("The worker running these sessions stopped"))
    assert shop in notice and blog in notice
    assert f"Resume with /session resume {min(shop, blog)} (and likewise for the others)." in notice
    assert {s.status for s in sessions(system.engine)} == {SessionStatus.PAUSED}
    # Later sweeps find nothing more to do.
    wait_until(lambda: system.workers[-1].log().count("recovery.run") >= 4, message="a few more sweeps")
    assert len(paused_notices(system)) == 1


def test_two_workers_recovering_at_once_notify_once(system: System) -> None:
    first = system.worker("w1")
    shop = start(system)
    first.kill9()
    a = system.worker("w1", start=False).start(wait=False)
    b = system.worker("w2", start=False).start(wait=False)
    a.wait_ready()
    b.wait_ready()
    system.wait_reply(lambda t: t.startswith("The worker running these sessions stopped"))
    wait_until(lambda: "recovery.run" in b.log() and "recovery.run" in a.log(), message="both to recover")
    assert len(paused_notices(system)) == 1
    assert transitions(system.engine, shop) == [("CREATED", "ACTIVE"), ("ACTIVE", "PAUSED")]


def test_host_that_goes_away_leaves_sessions_paused(system: System) -> None:
    """No restart at all: another worker notices the expired lease and pauses the session."""
    system.worker("w1", "hosta")
    watcher = system.worker("w9", "hostb")
    shop = start(system)
    system.workers[0].kill9()
    system.wait_reply(lambda t: t.startswith("The worker running these sessions stopped"), timeout=40)
    assert one_session(system.engine).status == SessionStatus.PAUSED
    assert "recovery.run" in watcher.log()
    system.publisher.send(f"/session resume {shop}")
    system.wait_reply(lambda t: t.startswith("Host 'hosta' is offline"))
    system.worker("w1", "hosta")
    system.publisher.send(f"/session resume {shop}")
    system.wait_reply(lambda t: t.startswith(f"Resumed session {shop}"))
    assert one_session(system.engine).status == SessionStatus.ACTIVE


def test_state_survives_stopping_every_process(system: System) -> None:
    worker = system.worker()
    shop = start(system)
    worker.stop()
    system.redis.stop()
    system.signal.stop()
    system.signal.start()
    system.redis.start()
    system.worker()
    system.wait_reply(lambda t: t.startswith("The worker running these sessions stopped"), timeout=30)
    system.publisher.send("/session list")
    (listing,) = system.wait_reply(lambda t: t.startswith("Sessions:"))
    assert shop in listing
    system.publisher.send(f"/session resume {shop}")
    system.wait_reply(lambda t: t.startswith(f"Resumed session {shop}"))
